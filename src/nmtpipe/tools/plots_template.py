"""`nmtpipe plots-template PATH`: an HTML template that makes `dvc plots` work offline.

DVC's default page loads Vega from a CDN, so `dvc plots show/diff` output is
blank without network. This template inlines the Vega, Vega-Lite and Vega-Embed
bundle that vl-convert ships. `.dvc/config` points `plots.html_template` at
`.dvc/offline-plots.html`, which `make install` writes with this command.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nmtpipe.fileio import atomic_file

VEGA_LITE_VERSION = "5.21"  # the major version of the specs DVC writes

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{refresh_tag}
<title>DVC plots</title>
<style>table { border-spacing: 15px; }</style>
<script>
@BUNDLE@
</script>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def offline_template() -> str:
    """DVC's page layout with the Vega libraries inline instead of from a CDN."""
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE_VERSION)
    return PAGE.replace("@BUNDLE@", bundle.replace("</script", "<\\/script"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="nmtpipe plots-template", description=__doc__)
    parser.add_argument("path", type=Path, help="where to write the template")
    args = parser.parse_args(argv)
    with atomic_file(args.path) as tmp:
        tmp.write_text(offline_template(), encoding="utf-8")

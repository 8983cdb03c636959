"""Project tools: params presets, the offline `dvc plots` template."""

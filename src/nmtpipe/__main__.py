from nmtpipe.cli import main

raise SystemExit(main())

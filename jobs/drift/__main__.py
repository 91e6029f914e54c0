from jobs.drift.cli import main

raise SystemExit(main())

from nfs_provisioner.cli import main

raise SystemExit(main())

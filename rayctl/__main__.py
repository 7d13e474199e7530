from rayctl.cli.app import main

main()

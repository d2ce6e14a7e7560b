from aictl.cli import main

main()

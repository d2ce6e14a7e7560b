from aictl.entry import main

main()

from valley.cli import main

main()

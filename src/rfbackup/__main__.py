from rfbackup.cli import main

main()

from rfbackup.main import main

main()

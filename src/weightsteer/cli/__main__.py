from weightsteer.cli import main

main()

from ctrpipe.cli import main

main()

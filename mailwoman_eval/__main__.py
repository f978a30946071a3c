from mailwoman_eval.cli import main

main()

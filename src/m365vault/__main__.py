from m365vault.cli import main

main()

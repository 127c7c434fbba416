package app

// Run is replaced as the CLI lands.
func Run(args []string) int { return 0 }

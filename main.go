// Command shardlift live-migrates a MongoDB sharded cluster into another one.
package main

import (
	"os"

	"github.com/shardlift/shardlift/app"
)

func main() {
	os.Exit(app.Run(os.Args[1:]))
}

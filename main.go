// Command shardlift live-migrates a MongoDB sharded cluster into another one.
package main

import (
	"os"

	"github.com/shardlift/shardlift/app"
	_ "github.com/shardlift/shardlift/app/plainlocale" // before Fyne's init: see its doc
)

func main() {
	os.Exit(app.Run(os.Args[1:]))
}

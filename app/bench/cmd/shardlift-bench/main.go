// Command shardlift-bench measures Shardlift on local sandbox clusters and prints
// one table (`make bench`); see package app/bench.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/shardlift/shardlift/app/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := bench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

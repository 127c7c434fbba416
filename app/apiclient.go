package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shardlift/shardlift/app/api"
)

// apiClients are the thin clients of the API, one command each.
var apiClients = []struct {
	name, summary, method, path, synopsis string
}{
	{"status", "print the status of a running headless migration (GET /status)", http.MethodGet, "/status", "--api ADDR"},
	{"cutover", "start the cutover of a ready migration (POST /cutover/start)", http.MethodPost, "/cutover/start", "--api ADDR"},
	{"done", "finish the cutover once the optime gap is 0 (POST /cutover/done)", http.MethodPost, "/cutover/done", "--api ADDR [--override]"},
	{"cancel", "stop syncing, keep the migrated data, restore the balancers (POST /cancel)", http.MethodPost, "/cancel", "--api ADDR"},
	{"extend", "add 24 hours to the cutover window (POST /timer/extend)", http.MethodPost, "/timer/extend", "--api ADDR"},
	{"restart-shard", "copy and replay one shard again (POST /shards/{name}/restart)", http.MethodPost, "/shards/{name}/restart", "--api ADDR SHARD"},
	{"verify", "compare source and destination now, while ready (POST /verify)", http.MethodPost, "/verify", "--api ADDR"},
}

// clientCommand is the command table's entry of the named thin client.
func clientCommand(name string) command {
	for _, c := range apiClients {
		if c.name == name {
			return command{name: c.name, summary: c.summary, run: func(ctx context.Context, s streams, args []string) int {
				return runClient(ctx, s, args, c.name, c.method, c.path, c.synopsis)
			}}
		}
	}
	panic("no API client " + name)
}

func runClient(ctx context.Context, s streams, args []string, name, method, path, synopsis string) int {
	f := newFlags(name, synopsis, fmt.Sprintf(`Calls %s %s on the API of a running 'shardlift migrate --api ADDR' and prints the
answer (the migration's status as JSON, or the error). Exit status: 0 when the action
was accepted, 1 when it was refused or failed, 2 for bad usage.`, method, path))
	addr := f.String("api", "", "the `ADDR` (HOST:PORT) given to shardlift migrate --api")
	tokenFile := f.String("api-token-file", "", "the token `FILE` given to shardlift migrate --api-token-file, when it has one")
	timeout := f.Duration("timeout", 30*time.Minute, "wait at most `D` for the answer (I'm done verifies the destination first)")
	var override *bool
	if name == "done" {
		override = f.Bool("override", false, "finish even though verification found ranges that differ (recorded in the history)")
	}
	if code, ok := f.parse(s, args); !ok {
		return code
	}
	switch {
	case *addr == "":
		return usageError(s, f.prog, "--api is required")
	case strings.Contains(path, "{name}") && f.NArg() != 1:
		return usageError(s, f.prog, "name the shard to restart: %s", synopsis)
	case !strings.Contains(path, "{name}") && f.NArg() > 0:
		return usageError(s, f.prog, "unexpected argument %q", f.Arg(0))
	}
	if strings.Contains(path, "{name}") {
		path = strings.Replace(path, "{name}", url.PathEscape(f.Arg(0)), 1)
	}
	if override != nil && *override {
		path += "?override=true"
	}
	var token string
	if *tokenFile != "" {
		var err error
		if token, err = api.ReadToken(*tokenFile); err != nil {
			fmt.Fprintf(s.err, "%s: %v\n", f.prog, err)
			return exitFail
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	code, body, err := api.Call(ctx, *addr, method, path, token)
	if err != nil {
		fmt.Fprintf(s.err, "%s: cannot reach the API at %s (is 'shardlift migrate --api %s' running?): %v\n", f.prog, *addr, *addr, err)
		return exitFail
	}
	s.out.Write(body)
	if code/100 != 2 {
		var e api.ErrorBody
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			fmt.Fprintf(s.err, "%s: %s\n", f.prog, e.Error)
		} else {
			fmt.Fprintf(s.err, "%s: the API answered %d\n", f.prog, code)
		}
		return exitFail
	}
	var st api.Status
	if name == "cancel" && json.Unmarshal(body, &st) == nil {
		// What the staging copy holds, shard by shard, for people.
		fmt.Fprintf(s.err, "%s: %s\n", f.prog, st.Reason)
		if st.Summary != nil {
			for _, p := range st.Summary.Shards {
				fmt.Fprintf(s.err, "  %s\n", p.Text)
			}
		}
	}
	return exitOK
}

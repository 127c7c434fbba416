package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/engine/validate"
)

const validateDescription = `Runs every pre-migration check on a source and a destination sharded cluster and
prints one line per check: its status, the finding and, when it did not pass, the fix.
Nothing is changed on either cluster.

Each cluster is given as its mongos connection string (mongodb://..., mongodb+srv://...)
or as a list of its mongos host:port (db1:27017,db2:27017), as in the app.

Passwords come from the URI, or else from SHARDLIFT_SOURCE_PASSWORD and
SHARDLIFT_DESTINATION_PASSWORD; the password of a client certificate's key
(tlsCertificateKeyFile=) from tlsCertificateKeyFilePassword= or else
SHARDLIFT_SOURCE_KEY_PASSWORD and SHARDLIFT_DESTINATION_KEY_PASSWORD. They are
never printed. Each connection and each
command waits at most --timeout, so a dead or firewalled host cannot hold validation.

Exit status: 0 when no check failed (warnings allowed), 1 when one failed, 2 for bad usage.`

// Environment variables holding the passwords a URI leaves out: the users' and
// those of the client certificates' keys (named by suffixing keyPasswordEnvSuffix).
const (
	envSourcePassword      = "SHARDLIFT_SOURCE_PASSWORD"
	envDestinationPassword = "SHARDLIFT_DESTINATION_PASSWORD"
	keyPasswordEnvSuffix   = "_KEY_PASSWORD" // SHARDLIFT_SOURCE_KEY_PASSWORD
)

// keyPasswordEnv is the variable holding the key password of the side whose user
// password is in passwordEnv.
func keyPasswordEnv(passwordEnv string) string {
	return strings.TrimSuffix(passwordEnv, "_PASSWORD") + keyPasswordEnvSuffix
}

func runValidate(ctx context.Context, s streams, args []string) int {
	f := newFlags("validate", "--source URI --destination URI [flags]", validateDescription)
	clusters := addClusterFlags(f)
	asJSON := f.Bool("json", false, "print the report as JSON")
	timeout := f.Duration("timeout", topology.DefaultTimeout, "wait at most `D` for each connection and each command")
	if code, ok := f.parse(s, args); !ok {
		return code
	}
	switch {
	case f.NArg() > 0:
		return usageError(s, f.prog, "unexpected argument %q", f.Arg(0))
	case *clusters.source == "":
		return usageError(s, f.prog, "--source is required")
	case *clusters.destination == "":
		return usageError(s, f.prog, "--destination is required")
	case *timeout <= 0:
		return usageError(s, f.prog, "--timeout %v: the timeout must be positive", *timeout)
	}
	src, dst, err := clusters.endpoints(*timeout)
	if err != nil {
		return usageError(s, f.prog, "%v", err)
	}
	// Whatever a finding quotes, the passwords do not reach the terminal.
	out := &redactingWriter{w: s.out, secrets: endpointSecrets(src, dst)}

	fmt.Fprintf(s.err, "Validating %s -> %s (timeout %v per step)...\n", src, dst, *timeout)
	report := validate.Run(ctx, src, dst)
	if *asJSON {
		if err := writeReportJSON(out, src, dst, report); err != nil {
			fmt.Fprintf(s.err, "%s: write the report: %v\n", f.prog, err)
			return exitFail
		}
	} else {
		writeReport(out, report)
	}
	if err := ctx.Err(); err != nil {
		fmt.Fprintf(s.err, "%s: interrupted\n", f.prog)
		return exitFail
	}
	if !report.Passed() {
		return exitFail
	}
	return exitOK
}

// endpointFor builds an endpoint from a URI or a mongos host:port list (as the app's
// form takes them), a CA file and the password variable. A URI that names a user
// without a password takes it from the environment; without either, the user would
// be sent an empty password, so that is bad usage.
func endpointFor(flagName, uri, caFile, passwordEnv string, timeout time.Duration) (topology.Endpoint, error) {
	e := topology.Endpoint{URI: uri, CAFile: caFile, Timeout: timeout}
	if !strings.Contains(uri, "://") {
		if strings.Contains(uri, "@") {
			return e, fmt.Errorf("%s %q names a user: write it as a connection string, mongodb://USER@host:port/", flagName, topology.MaskHostUser(uri))
		}
		hosts, err := topology.ParseHostList(uri)
		if err != nil {
			return e, fmt.Errorf("%s: %v (give a mongos host:port list or a mongodb:// connection string)", flagName, err)
		}
		e.URI, e.Hosts = "", hosts
		return e, nil
	}
	e.CertificateKeyPassword = os.Getenv(keyPasswordEnv(passwordEnv)) // the URI's wins when it has one
	user, hasPassword := topology.URIUser(uri)
	if user != "" && !hasPassword {
		e.Password = os.Getenv(passwordEnv)
		if e.Password == "" {
			return e, fmt.Errorf("%s names user %q but no password: put it in the URI or in %s", flagName, user, passwordEnv)
		}
	}
	return e, nil
}

// endpointSecrets are every secret the endpoints hold, in the forms output could
// quote them: what a redactingWriter masks.
func endpointSecrets(es ...topology.Endpoint) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Password, uriSecret(e.URI), e.CertificateKeyPassword)
		if cs, err := topology.ParseURI(e.URI); err == nil && cs.SSLClientCertificateKeyPasswordSet && cs.SSLClientCertificateKeyPassword != nil {
			kp := cs.SSLClientCertificateKeyPassword()
			out = append(out, kp, url.QueryEscape(kp))
		}
	}
	return out
}

// uriSecret is the password written in a URI, if any.
func uriSecret(uri string) string {
	scheme := strings.Index(uri, "://")
	at := strings.LastIndex(uri, "@")
	if scheme < 0 || at < scheme {
		return ""
	}
	_, pw, _ := strings.Cut(uri[scheme+3:at], ":")
	return pw
}

// statusLabels are fixed-width so the findings line up.
var statusLabels = map[validate.Status]string{
	validate.Passed:  "PASS   ",
	validate.Failed:  "FAIL   ",
	validate.Warning: "WARN   ",
	validate.NotRun:  "NOT RUN",
}

// writeReport prints one line per check and a summary.
func writeReport(w io.Writer, r validate.Report) {
	for _, f := range r.Findings {
		line := fmt.Sprintf("%s  %s: %s", statusLabels[f.Status], f.Title, f.Detail)
		if f.Fix != "" {
			line += " | Fix: " + f.Fix
		}
		fmt.Fprintln(w, line)
	}
	verdict := "the migration can start"
	if !r.Passed() {
		verdict = "fix the failed checks before starting the migration"
	} else if r.Count(validate.Warning) > 0 {
		verdict = "the migration can start; read the warnings first"
	}
	fmt.Fprintf(w, "\n%s in %v: %s.\n", r.Summary(), r.Elapsed.Round(time.Millisecond), verdict)
}

// reportJSON is the --json form of a report.
type reportJSON struct {
	Source      string             `json:"source"`
	Destination string             `json:"destination"`
	Passed      bool               `json:"passed"`
	Counts      map[string]int     `json:"counts"`
	ElapsedMS   int64              `json:"elapsed_ms"`
	Findings    []validate.Finding `json:"findings"`
}

func writeReportJSON(w io.Writer, src, dst topology.Endpoint, r validate.Report) error {
	counts := map[string]int{}
	for _, st := range []validate.Status{validate.Passed, validate.Failed, validate.Warning, validate.NotRun} {
		counts[string(st)] = r.Count(st)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(reportJSON{
		Source: src.String(), Destination: dst.String(), Passed: r.Passed(), Counts: counts,
		ElapsedMS: r.Elapsed.Milliseconds(), Findings: r.Findings,
	})
}

// redactingWriter replaces every secret in what passes through it with ****.
// Secrets shorter than 4 characters are left alone: masking them would garble
// ordinary words, and no finding quotes a password anyway (this is a second fence).
type redactingWriter struct {
	w       io.Writer
	secrets []string
}

func (r *redactingWriter) Write(p []byte) (int, error) {
	text := string(p)
	for _, sec := range r.secrets {
		if len(sec) >= 4 {
			text = strings.ReplaceAll(text, sec, "****")
		}
	}
	if _, err := io.WriteString(r.w, text); err != nil {
		return 0, err
	}
	return len(p), nil
}

package gui

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/engine/validate"
	"github.com/shardlift/shardlift/internal/units"
	"github.com/shardlift/shardlift/store"
	"github.com/shardlift/shardlift/ui"
)

// A connection form as the engine and the store see it:
//
//	ui.Connection ─► connOf ─┬─► topology.Endpoint (with the password, for this process)
//	                         └─► store.ConnSettings (connection string through
//	                             store.RedactURI: no secret, for the state file)
//	store.ConnSettings + password from the keyring ─► checkpoints.EndpointOf (resume)
//
// Anything wrong with one field comes back as a *ui.FieldError naming it.

// conn is one form, checked and mapped.
type conn struct {
	endpoint topology.Endpoint
	settings store.ConnSettings
	// password is the one the endpoint authenticates with: the form's field, or the
	// connection string's when the field is empty. It goes to the keyring only.
	password string
	// keyPassword decrypts the client certificate's key (the connection string's
	// tlsCertificateKeyFilePassword). It goes to the keyring only.
	keyPassword string
}

// connOf checks one form and maps it.
func connOf(side ui.Side, c ui.Connection, timeout time.Duration) (conn, error) {
	fieldErr := func(f ui.Field, format string, a ...any) error {
		return &ui.FieldError{Side: side, Field: f, Err: fmt.Errorf(format, a...)}
	}
	// classified is an error of engine/topology with the fix it names.
	classified := func(f ui.Field, err error) error {
		return &ui.FieldError{Side: side, Field: f, Err: err, Fix: topology.Fix(err)}
	}
	hosts := strings.TrimSpace(c.Hosts)
	if hosts == "" {
		return conn{}, fieldErr(ui.FieldHosts, "enter the mongos host:port list (db1:27017,db2:27017) or a mongodb:// connection string")
	}
	out := conn{password: c.Password}
	e := topology.Endpoint{Username: strings.TrimSpace(c.Username), Password: c.Password, TLS: c.TLS, Timeout: timeout}
	set := store.ConnSettings{Username: e.Username, TLS: c.TLS}
	if strings.Contains(hosts, "://") {
		if !strings.HasPrefix(hosts, "mongodb://") && !strings.HasPrefix(hosts, "mongodb+srv://") {
			return conn{}, fieldErr(ui.FieldHosts, "%s is not a mongodb:// or mongodb+srv:// connection string", topology.MaskURI(schemeOf(hosts)))
		}
		cs, err := topology.ParseURI(hosts)
		if err != nil {
			return conn{}, classified(ui.FieldHosts, err)
		}
		e.URI = hosts
		set.Hosts = cs.Hosts
		// Every option, and an SRV name unresolved (its records may change), so that
		// a resumed migration connects as this one does.
		set.URI = store.RedactURI(hosts)
		if set.Username == "" {
			set.Username = cs.Username
		}
		if out.password == "" {
			out.password = cs.Password
		}
		if cs.SSLClientCertificateKeyPasswordSet && cs.SSLClientCertificateKeyPassword != nil {
			out.keyPassword = cs.SSLClientCertificateKeyPassword()
		}
		// cs.SSL is on for mongodb+srv:// unless the string says tls=false; the
		// resumed endpoint takes this with the string, so it must not say more.
		set.TLS = set.TLS || cs.SSL
		if cs.SSLCaFileSet && c.CAFile == "" && c.CAPEM == "" {
			c.CAFile = cs.SSLCaFile
		}
	} else {
		list, err := topology.ParseHostList(hosts)
		if err != nil {
			return conn{}, &ui.FieldError{Side: side, Field: ui.FieldHosts, Err: err}
		}
		e.Hosts, set.Hosts = list, list
	}
	switch {
	case c.CAPEM != "":
		pemText := strings.TrimSpace(c.CAPEM)
		if err := checkCA([]byte(pemText)); err != nil {
			return conn{}, &ui.FieldError{Side: side, Field: ui.FieldCA, Err: fmt.Errorf("the pasted CA: %w", err)}
		}
		e.CAPEM, set.CAPEM = []byte(pemText), pemText
	case c.CAFile != "":
		data, err := topology.ReadCAFile(c.CAFile)
		if err != nil {
			return conn{}, classified(ui.FieldCA, err)
		}
		if err := checkCA(data); err != nil {
			return conn{}, fieldErr(ui.FieldCA, "%s: %v", c.CAFile, err)
		}
		e.CAFile, set.CAFile = c.CAFile, c.CAFile
	}
	if e.CAFile != "" || len(e.CAPEM) > 0 {
		e.TLS, set.TLS = true, true
	}
	if err := authOf(c, &e, &set, &out); err != nil {
		err.Side = side
		return conn{}, err
	}
	if c.ReadPreference != "" {
		mode, err := topology.ParseReadPreferenceMode(c.ReadPreference)
		if err != nil {
			return conn{}, fieldErr(ui.FieldReadPreference, "%v", err)
		}
		e.ReadPreference, set.ReadPreference = mode, mode
	}
	if side == ui.Source {
		if _, err := e.Reads(); err != nil {
			return conn{}, fieldErr(ui.FieldReadPreference, "%v", err)
		}
		if err := shardReadsOf(c, &e, &set); err != nil {
			return conn{}, err
		}
	}
	if _, err := e.ClientOptions(); err != nil {
		return conn{}, classified(fieldOf(err), err)
	}
	out.endpoint, out.settings = e, set
	return out, nil
}

// shardReadsOf takes the source's shards read otherwise, each checked with the
// source's staleness bound (ReadsByShard).
func shardReadsOf(c ui.Connection, e *topology.Endpoint, set *store.ConnSettings) error {
	if len(c.ShardReadPreferences) == 0 {
		return nil
	}
	m := map[string]string{}
	for shard, spec := range c.ShardReadPreferences {
		if err := topology.AddShardReadPreference(m, shard+"="+spec); err != nil {
			return &ui.FieldError{Side: ui.Source, Field: ui.FieldShardReadPreferences, Err: err}
		}
	}
	e.ShardReadPreferences, set.ShardReadPreferences = m, m
	if _, err := e.ReadsByShard(); err != nil {
		return &ui.FieldError{Side: ui.Source, Field: ui.FieldShardReadPreferences, Err: err}
	}
	return nil
}

// authOf takes the form's authentication mechanism and its properties, the client
// certificate with its key's password, and the host map. The endpoint's fields win
// over the connection string's; the key password goes to the keyring only.
func authOf(c ui.Connection, e *topology.Endpoint, set *store.ConnSettings, out *conn) *ui.FieldError {
	props, err := topology.ParseMechanismProperties(c.AuthMechanismProperties)
	if err != nil {
		return &ui.FieldError{Field: ui.FieldMechanismProperties, Err: err}
	}
	for name := range props {
		if strings.EqualFold(name, "AWS_SESSION_TOKEN") {
			return &ui.FieldError{Field: ui.FieldMechanismProperties,
				Err: errors.New("AWS_SESSION_TOKEN is a secret: remove it here and set the AWS_SESSION_TOKEN environment variable before starting Shardlift, with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the driver reads them there)")}
		}
	}
	e.AuthMechanism, set.AuthMechanism = c.AuthMechanism, c.AuthMechanism
	e.AuthMechanismProperties, set.AuthMechanismProperties = props, props
	if f := strings.TrimSpace(c.CertificateKeyFile); f != "" {
		e.CertificateKeyFile, set.CertificateKeyFile = f, f
		e.TLS, set.TLS = true, true
	}
	if c.CertificateKeyPassword != "" {
		e.CertificateKeyPassword, out.keyPassword = c.CertificateKeyPassword, c.CertificateKeyPassword
	}
	if len(c.HostMap) > 0 {
		m := topology.HostMap{}
		for from, to := range c.HostMap {
			if err := m.Add(from + "=" + to); err != nil {
				return &ui.FieldError{Field: ui.FieldHostMap, Err: err}
			}
		}
		e.HostMap, set.HostMap = m, map[string]string(m)
	}
	return nil
}

// fieldOf is the form field an endpoint's error is about.
func fieldOf(err error) ui.Field {
	switch {
	case errors.Is(err, topology.ErrInvalidCA), errors.Is(err, topology.ErrCAFileUnreadable):
		return ui.FieldCA
	case errors.Is(err, topology.ErrClientCertUnreadable), errors.Is(err, topology.ErrInvalidClientCert):
		return ui.FieldClientCert
	case errors.Is(err, topology.ErrClientKeyPassword):
		return ui.FieldKeyPassword
	}
	return ui.FieldHosts
}

// schemeOf is the part of a connection string before its host, for a message.
func schemeOf(uri string) string {
	if i := strings.Index(uri, "://"); i >= 0 {
		return uri[:i+3] + "…"
	}
	return uri
}

// checkCA accepts PEM text holding at least one certificate and no private key.
func checkCA(data []byte) error {
	if strings.Contains(string(data), "PRIVATE KEY") {
		return errors.New("it contains a private key: give only the CA certificate (BEGIN CERTIFICATE), and keep the key secret")
	}
	rest := data
	n := 0
	for {
		block, after := pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(block.Bytes); err != nil {
				return fmt.Errorf("certificate %d cannot be read: %v", n+1, err)
			}
			n++
		}
		rest = after
	}
	if n == 0 {
		return errors.New("not a PEM certificate: it must hold the text from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----")
	}
	return nil
}

// applicationURI is the connection string the cutover screen gives the applications
// for a destination entered as a host list: the engine's names the hosts only, and
// an application following it would connect without TLS. It carries TLS and the CA
// file, not the user (applications connect as their own users); "" for a destination
// entered as a connection string, which the engine's keeps (without its password).
func applicationURI(e topology.Endpoint) string {
	if e.URI != "" || len(e.Hosts) == 0 {
		return ""
	}
	u := "mongodb://" + strings.Join(e.Hosts, ",") + "/"
	switch {
	case e.CAFile != "":
		u += "?tls=true&tlsCAFile=" + caPathEscaper.Replace(e.CAFile)
	case e.TLS || len(e.CAPEM) > 0:
		u += "?tls=true"
	}
	return u
}

// caPathEscaper escapes what a file path cannot hold as is in a connection string's
// option, leaving the slashes readable.
var caPathEscaper = strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "%20", "?", "%3F", ",", "%2C")

// checksOf turns the validation report into the Connections screen's checks. A check
// that could not run is counted as not run, as the command line counts it; it blocks
// the start as a failure does (the engine refuses it too).
func checksOf(r validate.Report) ui.Validation {
	var v ui.Validation
	for _, f := range r.Findings {
		c := ui.Check{Title: f.Title, Detail: f.Detail, Fix: f.Fix}
		switch f.Status {
		case validate.Passed:
			c.Status = ui.Passed
		case validate.Warning:
			c.Status = ui.Warning
		case validate.NotRun:
			c.Status = ui.NotRun
		default:
			c.Status = ui.Failed
		}
		v.Checks = append(v.Checks, c)
	}
	if f, ok := r.Finding(validate.IDDestHeld); ok && f.Status == validate.Failed && r.Destination != nil && r.Destination.Marker != nil {
		m := r.Destination.Marker
		v.HeldBy = &ui.Hold{ClusterID: r.Destination.Identity.ClusterID.Hex(), MigrationID: m.MigrationID, Marker: m.String(), Workstation: m.Workstation}
	}
	v.ShardHosts = shardHostsOf(r.Source)
	if f, ok := r.Finding(validate.IDDestEmpty); ok && f.Status != validate.Passed && r.Destination != nil && len(r.Destination.Namespaces) > 0 {
		v.DestinationHasData = true
		v.DestinationContents = contentsOf(r.Destination.Namespaces)
		v.WipeDatabases = wipedBy(r.Destination)
	}
	return v
}

// shardHostsOf lists the source's shard members as listShards names them, with why
// each could not be reached: the rows of the form's host map.
func shardHostsOf(src *topology.Cluster) []ui.ShardHost {
	if src == nil {
		return nil
	}
	var out []ui.ShardHost
	for _, sh := range src.Shards {
		for i, h := range sh.Hosts {
			row := ui.ShardHost{Shard: sh.Name, Host: h}
			if i < len(sh.Members) && sh.Members[i].Err != nil {
				row.Problem = sh.Members[i].Err.Error()
			}
			out = append(out, row)
		}
	}
	return out
}

// wipedBy names the databases a wipe of the destination drops, as prepare.Wipe
// picks them: every user database listed, and every one config.databases knows.
func wipedBy(dst *topology.Cluster) []string {
	var dbs []string
	for _, ns := range dst.Namespaces {
		dbs = append(dbs, ns.DB)
	}
	for _, db := range dst.Databases {
		if namespaces.UserDatabase(db.Name) {
			dbs = append(dbs, db.Name)
		}
	}
	slices.Sort(dbs)
	return slices.Compact(dbs)
}

// contentsOf describes what a destination holds: "2 databases (logs, shop), 5
// collections, 12,345 documents, 3.4 MiB".
func contentsOf(nss []topology.Namespace) string {
	var dbs []string
	seen := map[string]bool{}
	var docs, size int64
	known := true
	for _, ns := range nss {
		if !seen[ns.DB] {
			seen[ns.DB] = true
			dbs = append(dbs, ns.DB)
		}
		if ns.SizeKnown {
			docs += ns.Count
			size += ns.Size
		} else {
			known = false
		}
	}
	out := fmt.Sprintf("%s (%s), %s", countNoun(len(dbs), "database"), strings.Join(dbs, ", "), countNoun(len(nss), "collection"))
	if known {
		out += fmt.Sprintf(", %s documents, %s", humanize.Comma(docs), units.Bytes(size))
	}
	return out
}

func countNoun(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// resumable reports whether a migration in state s still has syncing to do.
func resumable(s engine.State) bool {
	switch s {
	case engine.Done, engine.Cancelled, engine.Expired:
		return false
	}
	return true
}

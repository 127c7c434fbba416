package topology

import (
	"strings"

	"go.mongodb.org/mongo-driver/x/mongo/driver/connstring"
)

// tlsFileOptions are the connection string options naming the client certificate
// files and their key password (lower case, with their legacy ssl spellings).
var tlsFileOptions = map[string]bool{
	"tlscertificatekeyfile": true, "sslclientcertificatekeyfile": true,
	"tlscertificatekeyfilepassword": true, "sslclientcertificatekeypassword": true,
	"tlscertificatefile": true, "tlsprivatekeyfile": true,
}

// secretOptions are the connection string options whose value is a secret.
var secretOptions = map[string]bool{
	"tlscertificatekeyfilepassword": true, "sslclientcertificatekeypassword": true,
}

// splitQuery cuts a connection string before its options ("" when it has none). The
// options start at the first ? after the / that ends the host list (a user name or
// password cannot hold an unescaped /).
func splitQuery(uri string) (head, query string) {
	scheme := strings.Index(uri, "://")
	if scheme < 0 {
		return uri, ""
	}
	slash := strings.Index(uri[scheme+3:], "/")
	if slash < 0 {
		return uri, ""
	}
	at := scheme + 3 + slash
	q := strings.Index(uri[at:], "?")
	if q < 0 {
		return uri, ""
	}
	return uri[:at+q], uri[at+q+1:]
}

// withoutQueryOptions is the connection string without the named options.
func withoutQueryOptions(uri string, drop map[string]bool) string {
	head, query := splitQuery(uri)
	if query == "" {
		return uri
	}
	var kept []string
	for _, pair := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' || r == ';' }) {
		key, _, _ := strings.Cut(pair, "=")
		if !drop[strings.ToLower(key)] {
			kept = append(kept, pair)
		}
	}
	if len(kept) == 0 {
		return head
	}
	return head + "?" + strings.Join(kept, "&")
}

// maskQuerySecrets replaces the values of secret options (the client key's password,
// an AWS session token in authMechanismProperties) with ****.
func maskQuerySecrets(uri string) string {
	head, query := splitQuery(uri)
	if query == "" {
		return uri
	}
	var b strings.Builder
	for query != "" {
		end := strings.IndexAny(query, "&;")
		pair, sep := query, ""
		if end >= 0 {
			pair, sep, query = query[:end], query[end:end+1], query[end+1:]
		} else {
			query = ""
		}
		key, value, ok := strings.Cut(pair, "=")
		switch k := strings.ToLower(key); {
		case !ok:
		case secretOptions[k]:
			pair = key + "=****"
		case k == "authmechanismproperties":
			pair = key + "=" + maskProperties(value)
		}
		b.WriteString(pair + sep)
	}
	return head + "?" + b.String()
}

// maskProperties masks AWS_SESSION_TOKEN in an authMechanismProperties value
// (NAME:value,NAME:value).
func maskProperties(value string) string {
	props := strings.Split(value, ",")
	for i, p := range props {
		name, _, ok := strings.Cut(p, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "AWS_SESSION_TOKEN") {
			props[i] = name + ":****"
		}
	}
	return strings.Join(props, ",")
}

// uriFlag tells whether an option the driver does not interpret itself (it keeps it
// in UnknownOptions) is set to true.
func uriFlag(cs *connstring.ConnString, lowerName string) bool {
	for _, v := range cs.UnknownOptions[lowerName] {
		if strings.EqualFold(v, "true") {
			return true
		}
	}
	return false
}

func nonEmpty(values ...string) []string {
	var out []string
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

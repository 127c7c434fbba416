//go:build gssapi

package topology

// gssapiBuilt: the driver was built with Kerberos (go build -tags gssapi).
const gssapiBuilt = true

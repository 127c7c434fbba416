//go:build !gssapi

package topology

// gssapiBuilt: without the gssapi build tag the driver cannot speak Kerberos.
const gssapiBuilt = false

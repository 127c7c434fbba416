package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"runtime"
	"strings"
)

// The API's token (--api-token-file). The API listens on loopback only, but every
// user and process of the workstation can reach a loopback port: with a token file,
// only who can read that file (its owner: it is created 0600) can drive or watch the
// migration. The token travels as "Authorization: Bearer <token>", which Prometheus
// sends from a scrape config's credentials_file as well.

// TokenBytes is the token's entropy; it is written as hex.
const TokenBytes = 32

// LoadOrCreateToken returns the token of the file at path, creating the file
// with a new token (owner-only) when it does not exist; created says so, and the
// caller prints the token that once.
func LoadOrCreateToken(path string) (token string, created bool, err error) {
	token, err = ReadToken(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return token, false, err
	}
	raw := make([]byte, TokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", false, err
	}
	token = hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("token file %s: create it: %w", path, err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return "", false, fmt.Errorf("token file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("token file %s: %w", path, err)
	}
	return token, true, nil
}

// ReadToken reads the token of an existing file. A file other users may read
// gives the token away: it is refused on the systems where modes mean that.
func ReadToken(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s: other users can read it (mode %v): run 'chmod 600 %s'", path, info.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("token file %s is empty: delete it, and Shardlift writes a new token there", path)
	}
	return token, nil
}

// requireToken answers 401 to a request that does not carry the token; with no
// token it serves every request, as without --api-token-file.
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shardlift"`)
			writeJSON(w, http.StatusUnauthorized, ErrorBody{Error: "this Shardlift API requires its token: give the file of " +
				"'shardlift migrate --api-token-file FILE' to the client (--api-token-file FILE)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Package plainlocale keeps the C.UTF-8 locale from making Fyne print an error on
// every start, GUI or CLI.
//
// Fyne looks up the user's locale in a package init, through a library that treats a
// bare "C" as "no locale" but reads "C.UTF-8" (Debian's default in containers and on
// many servers) as the language "C", which does not parse: "Fyne error: Error parsing
// user locale C" then precedes the output of every command. That library reads
// LANGUAGE before LANG for any locale other than a bare C, so setting LANGUAGE=en in
// that case makes it find English, which is what the C locale means. Blank-import this
// package from main: it imports only os and strings, so Go's package initialisation
// order (by import path, once a package's imports are ready) runs it before Fyne's.
package plainlocale

import (
	"os"
	"strings"
)

func init() { apply(os.Getenv, os.Setenv) }

func apply(getenv func(string) string, setenv func(string, string) error) {
	if getenv("LANGUAGE") != "" {
		return
	}
	loc := ""
	for _, name := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if loc = getenv(name); loc != "" {
			break
		}
	}
	if strings.HasPrefix(loc, "C.") || strings.HasPrefix(loc, "POSIX.") {
		setenv("LANGUAGE", "en")
	}
}

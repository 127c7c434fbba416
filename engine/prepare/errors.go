package prepare

import (
	"errors"
)

// ErrUnsupportedNamespace is matched (errors.Is) by Prepare's refusal of a
// namespace kind the engine does not migrate (time-series collections and any
// other type but collections and views). Validation reports these first; the
// error names every such namespace.
var ErrUnsupportedNamespace = errors.New("namespaces of a kind Shardlift does not migrate")

// MongoDB error codes Prepare and ClearShard react to.
const (
	codeCommandNotFound   = 59
	codeNamespaceExists   = 48
	codeNamespaceNotFound = 26
	codeAlreadyInit       = 23
	codeIllegalOperation  = 20
)

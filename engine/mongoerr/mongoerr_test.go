package mongoerr

import (
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/x/mongo/driver"
)

func TestHasCode(t *testing.T) {
	cmd := fmt.Errorf("drop: %w", mongo.CommandError{Code: 26, Name: "NamespaceNotFound"})
	write := mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000}}}
	auth := fmt.Errorf("auth: %w", driver.Error{Code: 18})
	for _, c := range []struct {
		err   error
		codes []int
		want  bool
	}{
		{cmd, []int{26}, true},
		{cmd, []int{48, 26}, true},
		{cmd, []int{48}, false},
		{write, []int{11000}, true},
		{auth, []int{18}, true},
		{auth, []int{13}, false},
		{fmt.Errorf("plain"), []int{26}, false},
		{nil, []int{26}, false},
	} {
		if got := HasCode(c.err, c.codes...); got != c.want {
			t.Errorf("HasCode(%v, %v) = %v, want %v", c.err, c.codes, got, c.want)
		}
	}
}

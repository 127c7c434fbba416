// Package mongoerr tells MongoDB's errors apart by their server error code.
package mongoerr

import (
	"errors"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/x/mongo/driver"
)

// HasCode reports whether err carries one of codes: from a command's reply
// (mongo.ServerError: a command, write or bulk write error) or from the driver's
// handshake (driver.Error, inside authentication errors).
func HasCode(err error, codes ...int) bool {
	if err == nil {
		return false
	}
	var se mongo.ServerError
	isServer := errors.As(err, &se)
	var de driver.Error
	isDriver := errors.As(err, &de)
	for _, c := range codes {
		if isServer && se.HasErrorCode(c) || isDriver && int(de.Code) == c {
			return true
		}
	}
	return false
}

package wire

import (
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
)

// MaxWireVersion is the wire version a MongoDB server of the given "major.minor" version
// reports; drivers pick their features from it. Unknown versions get 7.0's.
func MaxWireVersion(version string) int32 {
	major, minor := majorMinor(version)
	switch {
	case major == 3 && minor == 6:
		return 6
	case major == 4 && minor == 0:
		return 7
	case major == 4 && minor == 2:
		return 8
	case major == 4 && minor == 4:
		return 9
	case major == 5:
		return 13
	case major == 6:
		return 17
	case major == 7:
		return 21
	case major == 8:
		return 25
	}
	return 21
}

func majorMinor(version string) (int, int) {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return 0, 0
	}
	major, _ := strconv.Atoi(parts[0])
	minor, _ := strconv.Atoi(parts[1])
	return major, minor
}

// HelloBase is the part of a hello/isMaster reply every MongoDB server sends, for a
// server of the given version. Callers add their role: msg "isdbgrid" for a router,
// setName/hosts/isWritablePrimary for a replica-set primary.
func HelloBase(cmd *Command, version string) bson.D {
	primaryKey := "isWritablePrimary"
	if !strings.EqualFold(cmd.Name, "hello") {
		primaryKey = "ismaster"
	}
	return bson.D{
		{Key: primaryKey, Value: true},
		{Key: "maxBsonObjectSize", Value: int32(16 * 1024 * 1024)},
		{Key: "maxMessageSizeBytes", Value: int32(maxMessageSize)},
		{Key: "maxWriteBatchSize", Value: int32(100000)},
		{Key: "localTime", Value: time.Now()},
		{Key: "logicalSessionTimeoutMinutes", Value: int32(30)},
		{Key: "minWireVersion", Value: int32(0)},
		{Key: "maxWireVersion", Value: MaxWireVersion(version)},
		{Key: "readOnly", Value: false},
	}
}

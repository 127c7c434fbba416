package wire

import (
	"errors"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// Error is a command failure with MongoDB's code and code name, so that drivers and the
// engine classify it exactly as they would a real server's.
type Error struct {
	Code int32
	Name string
	Msg  string
}

func (e *Error) Error() string { return e.Name + ": " + e.Msg }

// Errorf-style constructors for the codes the sandbox answers with.
func Unauthorized(msg string) *Error { return &Error{13, "Unauthorized", msg} }
func AuthenticationFailed() *Error {
	return &Error{18, "AuthenticationFailed", "Authentication failed."}
}
func BadValue(msg string) *Error          { return &Error{2, "BadValue", msg} }
func FailedToParse(msg string) *Error     { return &Error{9, "FailedToParse", msg} }
func IllegalOperation(msg string) *Error  { return &Error{20, "IllegalOperation", msg} }
func NamespaceNotFound(msg string) *Error { return &Error{26, "NamespaceNotFound", msg} }
func CursorNotFound(msg string) *Error    { return &Error{43, "CursorNotFound", msg} }
func CommandNotFound(name string) *Error {
	return &Error{59, "CommandNotFound", "no such command: '" + name + "'"}
}
func MechanismUnavailable(msg string) *Error { return &Error{334, "MechanismUnavailable", msg} }

// ErrorReply turns err into the {ok: 0, errmsg, code, codeName} document MongoDB sends.
// A server error from a backend (a mongo.CommandError) keeps its code and message.
func ErrorReply(err error) bson.Raw {
	code, name, msg := int32(1), "InternalError", err.Error()
	var we *Error
	var ce mongo.CommandError
	switch {
	case errors.As(err, &we):
		code, name, msg = we.Code, we.Name, we.Msg
	case errors.As(err, &ce):
		code, name, msg = ce.Code, ce.Name, ce.Message
	}
	return Reply(bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: msg}, {Key: "code", Value: code}, {Key: "codeName", Value: name}})
}

// OK returns {ok: 1} followed by fields.
func OK(fields ...bson.E) bson.Raw {
	return Reply(append(bson.D{{Key: "ok", Value: 1.0}}, fields...))
}

// Reply marshals d; a document the handler built that does not marshal is a bug of the
// sandbox, reported to the client as an InternalError rather than crashing the server.
func Reply(d bson.D) bson.Raw {
	b, err := bson.Marshal(d)
	if err != nil {
		b, _ = bson.Marshal(bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: "sandbox: cannot encode reply: " + err.Error()}, {Key: "code", Value: int32(1)}, {Key: "codeName", Value: "InternalError"}})
	}
	return b
}

package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/x/mongo/driver/wiremessage"
)

// maxMessageSize is MongoDB's maxMessageSizeBytes: the largest message a server accepts.
const maxMessageSize = 48_000_000

// Command is one request as a handler sees it: the command document with any OP_MSG
// document sequences folded in as arrays (so `insert` carries its `documents` array
// whichever way the driver sent it).
type Command struct {
	// Name is the command's first key as the client sent it (for example "find", "isMaster").
	Name string
	// DB is the database the command runs against ($db, or the OP_QUERY namespace).
	DB string
	// Body is the whole command document, including $db and any session fields.
	Body bson.Raw
	// Legacy is true for an OP_QUERY command (the driver's first handshake).
	Legacy bool
}

// Lookup returns the value of a top-level field of the command, or a zero RawValue.
func (c *Command) Lookup(key string) bson.RawValue { return c.Body.Lookup(key) }

// request is one decoded message with what is needed to answer it.
type request struct {
	requestID  int32
	opcode     wiremessage.OpCode
	moreToCome bool
	cmd        Command
}

// readMessage reads one whole wire message from r.
func readMessage(r io.Reader) ([]byte, error) {
	var header [4]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, err
	}
	size := int32(binary.LittleEndian.Uint32(header[:]))
	if size < 16 || size > maxMessageSize {
		return nil, fmt.Errorf("message length %d is outside 16..%d bytes", size, maxMessageSize)
	}
	msg := make([]byte, size)
	copy(msg, header[:])
	if _, err := io.ReadFull(r, msg[4:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// decodeRequest parses an OP_MSG or an OP_QUERY command message.
func decodeRequest(msg []byte) (*request, error) {
	_, reqID, _, opcode, rem, ok := wiremessage.ReadHeader(msg)
	if !ok {
		return nil, errors.New("malformed message header")
	}
	req := &request{requestID: reqID, opcode: opcode}
	switch opcode {
	case wiremessage.OpMsg:
		return req, decodeOpMsg(req, rem)
	case wiremessage.OpQuery:
		return req, decodeOpQuery(req, rem)
	default:
		return nil, fmt.Errorf("opcode %v is not supported (only OP_MSG and the OP_QUERY handshake)", opcode)
	}
}

func decodeOpMsg(req *request, rem []byte) error {
	flags, rem, ok := wiremessage.ReadMsgFlags(rem)
	if !ok {
		return errors.New("malformed OP_MSG flags")
	}
	if flags&wiremessage.ChecksumPresent != 0 {
		if len(rem) < 4 {
			return errors.New("OP_MSG checksum flag set but no checksum")
		}
		rem = rem[:len(rem)-4]
	}
	req.moreToCome = flags&wiremessage.MoreToCome != 0

	var body bsoncore.Document
	var sequences []sequence
	for len(rem) > 0 {
		var stype wiremessage.SectionType
		stype, rem, ok = wiremessage.ReadMsgSectionType(rem)
		if !ok {
			return errors.New("malformed OP_MSG section")
		}
		switch stype {
		case wiremessage.SingleDocument:
			body, rem, ok = wiremessage.ReadMsgSectionSingleDocument(rem)
			if !ok {
				return errors.New("malformed OP_MSG body section")
			}
		case wiremessage.DocumentSequence:
			var id string
			var docs []bsoncore.Document
			id, docs, rem, ok = wiremessage.ReadMsgSectionDocumentSequence(rem)
			if !ok {
				return errors.New("malformed OP_MSG document sequence")
			}
			sequences = append(sequences, sequence{id, docs})
		default:
			return fmt.Errorf("unknown OP_MSG section kind %d", stype)
		}
	}
	if body == nil {
		return errors.New("OP_MSG without a body section")
	}
	if err := body.Validate(); err != nil {
		return fmt.Errorf("OP_MSG body: %w", err)
	}
	full := foldSequences(body, sequences)
	name, err := firstKey(full)
	if err != nil {
		return err
	}
	db, _ := bson.Raw(full).Lookup("$db").StringValueOK()
	if db == "" {
		return fmt.Errorf("command %q has no $db", name)
	}
	req.cmd = Command{Name: name, DB: db, Body: bson.Raw(full)}
	return nil
}

func decodeOpQuery(req *request, rem []byte) error {
	_, rem, ok := wiremessage.ReadQueryFlags(rem)
	if !ok {
		return errors.New("malformed OP_QUERY flags")
	}
	ns, rem, ok := wiremessage.ReadQueryFullCollectionName(rem)
	if !ok {
		return errors.New("malformed OP_QUERY namespace")
	}
	_, rem, ok = wiremessage.ReadQueryNumberToSkip(rem)
	if !ok {
		return errors.New("malformed OP_QUERY")
	}
	_, rem, ok = wiremessage.ReadQueryNumberToReturn(rem)
	if !ok {
		return errors.New("malformed OP_QUERY")
	}
	query, _, ok := wiremessage.ReadQueryQuery(rem)
	if !ok {
		return errors.New("malformed OP_QUERY document")
	}
	db, coll, _ := strings.Cut(ns, ".")
	if coll != "$cmd" {
		return fmt.Errorf("legacy OP_QUERY on %q is not supported: only commands", ns)
	}
	// Drivers wrap a command with read preference as {$query: {...}, $readPreference: ...}.
	if inner, ok := bson.Raw(query).Lookup("$query").DocumentOK(); ok {
		query = bsoncore.Document(inner)
	}
	name, err := firstKey(query)
	if err != nil {
		return err
	}
	req.cmd = Command{Name: name, DB: db, Body: bson.Raw(query), Legacy: true}
	return nil
}

type sequence struct {
	id   string
	docs []bsoncore.Document
}

// foldSequences returns body with each document sequence appended as an array field.
func foldSequences(body bsoncore.Document, seqs []sequence) bsoncore.Document {
	if len(seqs) == 0 {
		return body
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	elems, _ := body.Elements()
	for _, e := range elems {
		out = append(out, e...)
	}
	for _, s := range seqs {
		var aidx int32
		aidx, out = bsoncore.AppendArrayElementStart(out, s.id)
		for i, d := range s.docs {
			out = bsoncore.AppendDocumentElement(out, fmt.Sprint(i), d)
		}
		out, _ = bsoncore.AppendArrayEnd(out, aidx)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

func firstKey(doc bsoncore.Document) (string, error) {
	elems, err := doc.Elements()
	if err != nil {
		return "", fmt.Errorf("command document: %w", err)
	}
	if len(elems) == 0 {
		return "", errors.New("empty command document")
	}
	return elems[0].Key(), nil
}

// encodeReply builds the answer to req carrying doc.
func encodeReply(req *request, doc bson.Raw) []byte {
	if req.opcode == wiremessage.OpQuery {
		idx, b := wiremessage.AppendHeaderStart(nil, wiremessage.NextRequestID(), req.requestID, wiremessage.OpReply)
		b = wiremessage.AppendReplyFlags(b, wiremessage.AwaitCapable)
		b = wiremessage.AppendReplyCursorID(b, 0)
		b = wiremessage.AppendReplyStartingFrom(b, 0)
		b = wiremessage.AppendReplyNumberReturned(b, 1)
		b = append(b, doc...)
		return bsoncore.UpdateLength(b, idx, int32(len(b[idx:])))
	}
	idx, b := wiremessage.AppendHeaderStart(nil, wiremessage.NextRequestID(), req.requestID, wiremessage.OpMsg)
	b = wiremessage.AppendMsgFlags(b, 0)
	b = wiremessage.AppendMsgSectionType(b, wiremessage.SingleDocument)
	b = append(b, doc...)
	return bsoncore.UpdateLength(b, idx, int32(len(b[idx:])))
}

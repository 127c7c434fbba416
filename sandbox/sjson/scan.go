package sjson

import (
	"math"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON scanner: positions are byte offsets in the text; every function checks
// the bounds it reads.

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipWS returns the position of the first non-blank byte at or after p.
func skipWS(text []byte, p int) int {
	for p < len(text) && isWS(text[p]) {
		p++
	}
	return p
}

// Flags of a scanned string.
const (
	strEscaped uint8 = 1 << iota // has a backslash escape
	strHigh                      // has a byte >= 0x80
)

// plain[c] says the byte c stands for itself inside a JSON string with nothing to
// check: not a quote, a backslash, a control character or part of a multibyte rune.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString checks the JSON string whose opening quote is at p and returns the
// position after its closing quote and its flags (strEscaped, strHigh).
func scanString(text []byte, p int) (int, uint8, error) {
	var flags uint8
	i := p + 1
	for {
		for i < len(text) && plain[text[i]] {
			i++
		}
		if i >= len(text) {
			return 0, 0, errAt(p, "unterminated string")
		}
		switch c := text[i]; {
		case c == '"':
			return i + 1, flags, nil
		case c == '\\':
			flags |= strEscaped
			if i+1 >= len(text) {
				return 0, 0, errAt(i, "unterminated string")
			}
			switch text[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if hex4(text, i+2) < 0 {
					return 0, 0, errAt(i, `bad \u escape in a string`)
				}
				i += 6
			default:
				return 0, 0, errAt(i, "bad escape in a string")
			}
		case c < 0x20:
			return 0, 0, errAt(i, "control character in a string")
		default: // >= 0x80
			flags |= strHigh
			i++
		}
	}
}

// hex4 returns the value of the four hex digits at text[p:], or -1.
func hex4(text []byte, p int) rune {
	if p+4 > len(text) {
		return -1
	}
	var r rune
	for _, c := range text[p : p+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// needsUnquote says whether a string body with these flags differs from its decoded
// bytes: it has escapes, or bytes that are not valid UTF-8 (which Go's decoding, and so
// FerretDB's, turns into U+FFFD).
func needsUnquote(raw []byte, flags uint8) bool {
	return flags&strEscaped != 0 || flags&strHigh != 0 && !utf8.Valid(raw)
}

// appendUnquoted appends the decoded bytes of a string body raw (between the quotes,
// checked by scanString) as encoding/json decodes them: escapes, surrogate pairs, a
// lone or unpaired surrogate as U+FFFD, and each byte of invalid UTF-8 as U+FFFD.
func appendUnquoted(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			switch e := raw[i+1]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(raw, i+2)
				i += 6
				if utf16.IsSurrogate(r) {
					if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						if pair := utf16.DecodeRune(r, hex4(raw, i+2)); pair != utf8.RuneError {
							dst = utf8.AppendRune(dst, pair)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
			i += 2
		case c < utf8.RuneSelf:
			j := i + 1
			for j < len(raw) && raw[j] != '\\' && raw[j] < utf8.RuneSelf {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
		default:
			r, size := utf8.DecodeRune(raw[i:])
			dst = utf8.AppendRune(dst, r)
			i += size
		}
	}
	return dst
}

// scanNumber checks the JSON number at p and returns the position after it and
// whether it is an integer (no fraction, no exponent).
func scanNumber(text []byte, p int) (int, bool, error) {
	i := p
	if i < len(text) && text[i] == '-' {
		i++
	}
	switch {
	case i < len(text) && text[i] == '0':
		i++
	case i < len(text) && '1' <= text[i] && text[i] <= '9':
		for i < len(text) && isDigit(text[i]) {
			i++
		}
	default:
		return 0, false, errAt(p, "bad number")
	}
	integer := true
	if i < len(text) && text[i] == '.' {
		integer = false
		i++
		if i >= len(text) || !isDigit(text[i]) {
			return 0, false, errAt(p, "bad number")
		}
		for i < len(text) && isDigit(text[i]) {
			i++
		}
	}
	if i < len(text) && (text[i] == 'e' || text[i] == 'E') {
		integer = false
		i++
		if i < len(text) && (text[i] == '+' || text[i] == '-') {
			i++
		}
		if i >= len(text) || !isDigit(text[i]) {
			return 0, false, errAt(p, "bad number")
		}
		for i < len(text) && isDigit(text[i]) {
			i++
		}
	}
	return i, integer, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// digits returns the sign and magnitude of the JSON integer num (checked by
// scanNumber); ok is false if the magnitude exceeds 2^64-1.
func digits(num []byte) (neg bool, mag uint64, ok bool) {
	if num[0] == '-' {
		neg, num = true, num[1:]
	}
	for _, c := range num {
		d := uint64(c - '0')
		if mag > (math.MaxUint64-d)/10 {
			return neg, 0, false
		}
		mag = mag*10 + d
	}
	return neg, mag, true
}

// signed returns the JSON integer num if it lies in [-2^(bits-1), 2^(bits-1)-1], as
// encoding/json decodes a number into a signed integer ("-0" is 0).
func signed(num []byte, bits uint) (int64, bool) {
	neg, mag, ok := digits(num)
	if !ok {
		return 0, false
	}
	limit := uint64(1) << (bits - 1)
	if neg {
		if mag > limit {
			return 0, false
		}
		return int64(-mag), true // two's complement: -2^63 included
	}
	if mag >= limit {
		return 0, false
	}
	return int64(mag), true
}

// unsigned returns the JSON integer num as a uint64, as encoding/json decodes a
// number into one (a sign, even "-0", is refused).
func unsigned(num []byte) (uint64, bool) {
	neg, mag, ok := digits(num)
	return mag, ok && !neg
}

// literal says whether the text at p is the literal lit, and returns the position
// after it.
func literal(text []byte, p int, lit string) (int, bool) {
	if len(text)-p < len(lit) || string(text[p:p+len(lit)]) != lit {
		return 0, false
	}
	return p + len(lit), true
}

// skipValue checks the JSON value at p and returns the position after it.
func skipValue(text []byte, p, depth int) (int, error) {
	if depth > maxDepth {
		return 0, errAt(p, "nested too deeply")
	}
	if p >= len(text) {
		return 0, errAt(p, "expected a value")
	}
	switch c := text[p]; {
	case c == '"':
		end, _, err := scanString(text, p)
		return end, err
	case c == '{':
		return walkMembers(text, p, func(_ []byte, _ uint8, value int) (int, error) {
			return skipValue(text, value, depth+1)
		})
	case c == '[':
		return walkItems(text, p, func(value int) (int, error) {
			return skipValue(text, value, depth+1)
		})
	case c == '-' || isDigit(c):
		end, _, err := scanNumber(text, p)
		return end, err
	case c == 't':
		if end, ok := literal(text, p, "true"); ok {
			return end, nil
		}
	case c == 'f':
		if end, ok := literal(text, p, "false"); ok {
			return end, nil
		}
	case c == 'n':
		if end, ok := literal(text, p, "null"); ok {
			return end, nil
		}
	}
	return 0, errAt(p, "expected a value")
}

// walkItems walks the items of the JSON array whose '[' is at open, calling fn with
// each item's position; fn returns the position after the item. It returns the
// position after the closing ']'.
func walkItems(text []byte, open int, fn func(value int) (int, error)) (int, error) {
	p := skipWS(text, open+1)
	if p < len(text) && text[p] == ']' {
		return p + 1, nil
	}
	for {
		q, err := fn(p)
		if err != nil {
			return 0, err
		}
		p = skipWS(text, q)
		if p >= len(text) {
			return 0, errAt(p, "unterminated array")
		}
		switch text[p] {
		case ']':
			return p + 1, nil
		case ',':
			p = skipWS(text, p+1)
		default:
			return 0, errAt(p, "expected ',' or ']' in an array")
		}
	}
}

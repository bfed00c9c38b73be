package seal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Pins remembers, for each agency this agency has sealed to, the
// fingerprint of the key it first saw (trust on first use, as ssh's
// known_hosts), so that a key swapped by whoever runs the directory is
// refused rather than sealed to. It lives in a file of mode 0600 beside
// the key ring. Pins reads the file afresh on every call, so that a Trust
// made by another process counts at once; a Pins is safe for concurrent
// use within a process.
type Pins struct {
	path string
	mu   sync.Mutex
}

// Pin is one agency's pinned key.
type Pin struct {
	// Agency is the agency's name, "agencies/{agency}".
	Agency string
	// Fingerprint is the fingerprint of the agency's pinned key.
	Fingerprint Fingerprint
	// Since is when the key was first seen or last trusted, to the second.
	Since time.Time
}

// KeyChangedError is returned by Pins.Check when the key presented for an
// agency is not the one pinned for it.
type KeyChangedError struct {
	// Agency is the agency's name.
	Agency string
	// Pinned is the fingerprint of the key pinned for the agency.
	Pinned Fingerprint
	// Presented is the fingerprint of the key presented now.
	Presented Fingerprint
}

// Error says what changed and how to accept the change once the agency
// has confirmed it.
func (e *KeyChangedError) Error() string {
	return fmt.Sprintf("the encryption key of %s changed from %s to %s; check with the agency and run `exchangectl keys trust %s %s`",
		e.Agency, e.Pinned, e.Presented, e.Agency, e.Presented)
}

// pinsIntro heads every pin file.
const pinsIntro = `# The exchange: the encryption key pinned for each agency this agency seals
# to (agency, key fingerprint, since when). Change it with exchangectl keys trust.
`

// OpenPins returns the pins kept in the file at path, after reading the
// file once to check it: it refuses a file the group or others can read
// or write (ErrFileMode) and one that is not a pin file. The file need not
// exist yet: the first pin creates it.
func OpenPins(path string) (*Pins, error) {
	p := &Pins{path: path}
	if _, err := p.read(); err != nil {
		return nil, err
	}
	return p, nil
}

// Check accepts r as agency's key when r is the key pinned for agency, or
// when no key is pinned for agency yet, and then pins r. For any other key
// it returns a *KeyChangedError and changes nothing.
func (p *Pins) Check(agency string, r Recipient) error {
	if err := validateAgency(agency); err != nil {
		return err
	}
	if r.IsZero() {
		return errors.New("seal: pins: the key presented is empty")
	}
	presented := r.Fingerprint()
	p.mu.Lock()
	defer p.mu.Unlock()
	pins, err := p.read()
	if err != nil {
		return err
	}
	if pin, ok := pins[agency]; ok {
		if pin.Fingerprint != presented {
			return &KeyChangedError{Agency: agency, Pinned: pin.Fingerprint, Presented: presented}
		}
		return nil
	}
	pins[agency] = Pin{Agency: agency, Fingerprint: presented, Since: timeNow()}
	return p.write(pins)
}

// Trust pins f as agency's key, replacing any key pinned for it before:
// run it once the agency has confirmed, out of band, that f is its new
// key.
func (p *Pins) Trust(agency string, f Fingerprint) error {
	if err := validateAgency(agency); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pins, err := p.read()
	if err != nil {
		return err
	}
	if pin, ok := pins[agency]; ok && pin.Fingerprint == f {
		return nil
	}
	pins[agency] = Pin{Agency: agency, Fingerprint: f, Since: timeNow()}
	return p.write(pins)
}

// List returns every pin, by agency name.
func (p *Pins) List() ([]Pin, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pins, err := p.read()
	if err != nil {
		return nil, err
	}
	return sortedPins(pins), nil
}

// read reads the pin file: one pin a line, "agency fingerprint since",
// after comments. A missing file holds no pins. p.mu is held.
func (p *Pins) read() (map[string]Pin, error) {
	data, err := readPrivateFile(p.path, "pin file")
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Pin{}, nil
	}
	if err != nil {
		return nil, err
	}
	pins := map[string]Pin{}
	for n, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, " ")
		if len(fields) != 3 {
			return nil, fmt.Errorf("seal: pin file %s: line %d: want agency, fingerprint and time", p.path, n+1)
		}
		f, err := ParseFingerprint(fields[1])
		if err != nil {
			return nil, fmt.Errorf("seal: pin file %s: line %d: %w", p.path, n+1, err)
		}
		since, err := time.Parse(time.RFC3339, fields[2])
		if err != nil {
			return nil, fmt.Errorf("seal: pin file %s: line %d: time is not RFC 3339: %v", p.path, n+1, err)
		}
		if err := validateAgency(fields[0]); err != nil {
			return nil, fmt.Errorf("seal: pin file %s: line %d: %w", p.path, n+1, err)
		}
		if _, ok := pins[fields[0]]; ok {
			return nil, fmt.Errorf("seal: pin file %s: line %d: %s is pinned twice", p.path, n+1, fields[0])
		}
		pins[fields[0]] = Pin{Agency: fields[0], Fingerprint: f, Since: since}
	}
	return pins, nil
}

// write replaces the pin file atomically. p.mu is held.
func (p *Pins) write(pins map[string]Pin) error {
	var b bytes.Buffer
	b.WriteString(pinsIntro)
	for _, pin := range sortedPins(pins) {
		fmt.Fprintf(&b, "%s %s %s\n", pin.Agency, pin.Fingerprint, pin.Since.UTC().Format(time.RFC3339))
	}
	if err := writePrivateFile(p.path, b.Bytes(), false); err != nil {
		return fmt.Errorf("seal: pin file: %w", err)
	}
	return nil
}

// sortedPins returns pins by agency name.
func sortedPins(pins map[string]Pin) []Pin {
	out := make([]Pin, 0, len(pins))
	for _, pin := range pins {
		out = append(out, pin)
	}
	slices.SortFunc(out, func(a, b Pin) int { return strings.Compare(a.Agency, b.Agency) })
	return out
}

// validateAgency checks that an agency name can be a pin: not empty, at
// most MaxBindingField bytes of UTF-8, with no spaces or control
// characters (the pin file separates fields with spaces).
func validateAgency(agency string) error {
	switch {
	case agency == "":
		return errors.New("seal: pins: agency name is empty")
	case len(agency) > MaxBindingField:
		return fmt.Errorf("seal: pins: agency name is %d bytes long, more than %d", len(agency), MaxBindingField)
	case !utf8.ValidString(agency):
		return errors.New("seal: pins: agency name is not valid UTF-8")
	case strings.ContainsFunc(agency, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }):
		return fmt.Errorf("seal: pins: agency name %q contains a space or control character", agency)
	case strings.HasPrefix(agency, "#"):
		return fmt.Errorf("seal: pins: agency name %q starts with #", agency)
	}
	return nil
}

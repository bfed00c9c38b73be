package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// Default file names, in the directory of the agency's certificate: the
// key ring "{agency}.age-keys" and, beside it, the pins
// "{agency}.age-pins".
const (
	keyRingSuffix = ".age-keys"
	pinsSuffix    = ".age-pins"
)

// newKeysCmd is `exchangectl keys`.
func newKeysCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("keys", "Make, rotate and register this agency's encryption keys; pin partners' keys",
		"A referral's identifying details are sealed to the receiving agency's encryption\n"+
			"key and to the sender's own, so that only the two agencies can read them. Each\n"+
			"agency makes its keys on its own machine, in a key ring file (mode 0600, by\n"+
			"default ID.age-keys beside the agency's certificate), and registers only the\n"+
			"public half in the exchange's directory. Keys are age post-quantum hybrid keys\n"+
			"(ML-KEM-768 + X25519).\n\n"+
			"Keep the key ring secret and backed up: whoever copies it reads every referral\n"+
			"sealed to the agency; without it, nobody can. A key change shows in the agency's\n"+
			"own audit view. Partners' keys are pinned in ID.age-pins beside the key ring:\n"+
			"'keys pins' lists them, and 'keys trust' accepts a partner's new key once the\n"+
			"partner has confirmed its fingerprint.")
	cmd.AddCommand(
		newKeysCreateCmd(a, nil),
		newKeysRotateCmd(a, nil),
		newKeysRegisterCmd(a, nil),
		newKeysShowCmd(a, nil),
		newKeysTrustCmd(a, nil),
		newKeysPinsCmd(a, nil),
	)
	return cmd
}

// keyFiles are the --key-ring and --pins flags; empty means the default
// beside the agency's certificate.
type keyFiles struct {
	KeyRing string
	Pins    string
}

func (k *keyFiles) addKeyRingFlag(f *pflag.FlagSet) {
	f.StringVar(&k.KeyRing, "key-ring", "", "key ring file (default ID"+keyRingSuffix+" beside the agency's --cert)")
}

func (k *keyFiles) addPinsFlag(f *pflag.FlagSet) {
	f.StringVar(&k.Pins, "pins", "", "pin file (default ID"+pinsSuffix+" beside the key ring)")
}

// keyRingPath returns the agency's id and its key ring's path.
// The agency is the one the client certificate names; the secretariat
// has no encryption key.
func (k *keyFiles) keyRingPath(a *app) (agency, path string, err error) {
	name, err := a.ownAgency("encryption keys belong to agencies; pass an agency's --cert and --key")
	if err != nil {
		return "", "", err
	}
	agency = client.ResourceID(name)
	if k.KeyRing != "" {
		return agency, a.path(k.KeyRing), nil
	}
	cfg, err := a.clientConfig()
	if err != nil {
		return "", "", err
	}
	return agency, filepath.Join(filepath.Dir(cfg.CertFile), agency+keyRingSuffix), nil
}

// pinsPath returns the pin file's path: --pins, or beside the key ring.
// Only the default needs the agency's certificate.
func (k *keyFiles) pinsPath(a *app) (string, error) {
	if k.Pins != "" {
		return a.path(k.Pins), nil
	}
	agency, ring, err := k.keyRingPath(a)
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(ring), agency+pinsSuffix), nil
}

// keysCreateOptions are the inputs of `keys create`.
type keysCreateOptions struct {
	app *app
	keyFiles
}

// newKeysCreateCmd is `exchangectl keys create`.
func newKeysCreateCmd(a *app, runF func(*keysCreateOptions) error) *cobra.Command {
	opts := &keysCreateOptions{app: a}
	cmd := &cobra.Command{
		Use:   "create [--key-ring FILE]",
		Short: "Make this agency's key ring and register its public key",
		Long: "Make a new key pair on this machine, write it to a new key ring file (mode\n" +
			"0600, its directory created if missing; an existing file is never replaced)\n" +
			"and register the public key in the directory as the agency's encryption key.\n" +
			"The private key never leaves the file. The agency is the one the certificate\n" +
			"names.",
		Example: "  exchangectl keys create\n  exchangectl keys create --key-ring /secure/ilo.age-keys",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runKeysCreate(cmd.Context(), opts)
		},
	}
	opts.addKeyRingFlag(cmd.Flags())
	return cmd
}

// runKeysCreate makes the key ring and registers its key.
func runKeysCreate(ctx context.Context, o *keysCreateOptions) error {
	agency, path, err := o.keyRingPath(o.app)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx) // before the file: a bad configuration leaves nothing behind
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	ring, err := seal.CreateKeyRing(path)
	if errors.Is(err, fs.ErrExist) {
		return exitError{code: ExitConflict, message: fmt.Sprintf(
			"%s exists; not replacing a key ring (its keys open referrals sealed to them). "+
				"`exchangectl keys register` registers its current key again, `exchangectl keys rotate` adds a new one", path)}
	}
	if err != nil {
		return err
	}
	a, err := register(ctx, o.app, c, agency, ring, "was written")
	if err != nil {
		return err
	}
	return printRegistered(o.app, a, ring, fmt.Sprintf("Created the key ring %s (mode 0600) and registered its key for %s.", path, a.GetName()))
}

// register registers the key ring's current key for the agency. When
// that fails it says on stderr what state the key ring is in (what) and
// how to finish, and returns the call's error, whose status sets the exit
// code.
func register(ctx context.Context, a *app, c *client.Client, agency string, ring *seal.KeyRing, what string) (*exchangev1.Agency, error) {
	registered, err := c.Directory.SetEncryptionKey(ctx, agency, ring.Current().Recipient())
	if err != nil {
		fmt.Fprintf(a.env.Stderr, "exchangectl: the key ring %s %s, but its current key %s is not registered: run `exchangectl keys register` once the exchange answers.\n",
			ring.Path(), what, ring.Current().Recipient().Fingerprint())
		return nil, err
	}
	return registered, nil
}

// printRegistered prints the registered key, or the agency as JSON.
func printRegistered(a *app, agency *exchangev1.Agency, ring *seal.KeyRing, headline string) error {
	if a.global.JSON {
		return printJSON(a.env.Stdout, agency)
	}
	w := a.env.Stdout
	k := agency.GetEncryptionKey()
	fmt.Fprintf(w, "%s\n\n", headline)
	if err := printFields(w, []field{
		{"Fingerprint", k.GetFingerprint()},
		{"Registered", formatTime(k.GetCreateTime())},
		{"Key ring", fmt.Sprintf("%s (%d %s)", ring.Path(), len(ring.Keys()), plural(len(ring.Keys()), "key", "keys"))},
	}); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nKeep the key ring secret and backed up: whoever copies it reads every referral\n"+
		"sealed to %s; without it, nobody can. Give partners the fingerprint by\n"+
		"phone or in person, never through the exchange.\n", agency.GetName())
	return nil
}

// keysRotateOptions are the inputs of `keys rotate`.
type keysRotateOptions struct {
	app *app
	keyFiles
}

// newKeysRotateCmd is `exchangectl keys rotate`.
func newKeysRotateCmd(a *app, runF func(*keysRotateOptions) error) *cobra.Command {
	opts := &keysRotateOptions{app: a}
	cmd := &cobra.Command{
		Use:   "rotate [--key-ring FILE]",
		Short: "Add a new current key to the key ring and register it",
		Long: "Make a new key, put it first in the key ring as the current key, keep the old\n" +
			"ones (referrals sealed to them still open) and register the new public key.\n" +
			"Partners that pinned the old key are refused when they seal to the new one\n" +
			"until they run 'exchangectl keys trust' with its fingerprint: tell them.",
		Example: "  exchangectl keys rotate",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runKeysRotate(cmd.Context(), opts)
		},
	}
	opts.addKeyRingFlag(cmd.Flags())
	return cmd
}

// runKeysRotate rotates the key ring and registers the new key.
func runKeysRotate(ctx context.Context, o *keysRotateOptions) error {
	agency, path, err := o.keyRingPath(o.app)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	ring, err := openKeyRing(path)
	if err != nil {
		return err
	}
	old := ring.Current().Recipient().Fingerprint()
	if _, err := ring.Rotate(); err != nil {
		if errors.Is(err, seal.ErrKeyRingChanged) {
			return exitError{code: ExitConflict, message: err.Error()}
		}
		return err
	}
	a, err := register(ctx, o.app, c, agency, ring, "has a new current key")
	if err != nil {
		return err
	}
	if err := printRegistered(o.app, a, ring, fmt.Sprintf("Rotated the key ring %s and registered its new key for %s (the old key, %s, stays in the ring).", path, a.GetName(), old)); err != nil {
		return err
	}
	if !o.app.global.JSON {
		fmt.Fprintf(o.app.env.Stdout, "Partners that pinned %s must run\n  exchangectl keys trust %s %s\nbefore they can seal to you again. Keep the old key until every referral sealed to it is closed.\n",
			old, a.GetName(), a.GetEncryptionKey().GetFingerprint())
	}
	return nil
}

// openKeyRing opens the key ring at path, saying how to make one when
// there is none.
func openKeyRing(path string) (*seal.KeyRing, error) {
	ring, err := seal.OpenKeyRing(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, exitError{code: ExitNotFound, message: fmt.Sprintf("no key ring at %s: make one with `exchangectl keys create`, or pass --key-ring", path)}
	}
	if errors.Is(err, seal.ErrFileMode) {
		return nil, exitError{code: ExitInvalid, message: err.Error()}
	}
	return ring, err
}

// keysRegisterOptions are the inputs of `keys register`.
type keysRegisterOptions struct {
	app *app
	keyFiles
}

// newKeysRegisterCmd is `exchangectl keys register`.
func newKeysRegisterCmd(a *app, runF func(*keysRegisterOptions) error) *cobra.Command {
	opts := &keysRegisterOptions{app: a}
	cmd := &cobra.Command{
		Use:   "register [--key-ring FILE]",
		Short: "Register the key ring's current key (again)",
		Long: "Register the current key of an existing key ring as the agency's encryption\n" +
			"key, for example after 'keys create' or 'keys rotate' could not reach the\n" +
			"exchange. Registering the key already registered changes nothing.",
		Example: "  exchangectl keys register",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runKeysRegister(cmd.Context(), opts)
		},
	}
	opts.addKeyRingFlag(cmd.Flags())
	return cmd
}

// runKeysRegister registers the current key of the key ring.
func runKeysRegister(ctx context.Context, o *keysRegisterOptions) error {
	agency, path, err := o.keyRingPath(o.app)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	ring, err := openKeyRing(path)
	if err != nil {
		return err
	}
	a, err := register(ctx, o.app, c, agency, ring, "is unchanged")
	if err != nil {
		return err
	}
	return printRegistered(o.app, a, ring, fmt.Sprintf("Registered the current key of %s for %s.", path, a.GetName()))
}

// keysShowOptions are the inputs of `keys show`.
type keysShowOptions struct {
	app *app
	keyFiles
}

// newKeysShowCmd is `exchangectl keys show`.
func newKeysShowCmd(a *app, runF func(*keysShowOptions) error) *cobra.Command {
	opts := &keysShowOptions{app: a}
	cmd := &cobra.Command{
		Use:   "show [--key-ring FILE]",
		Short: "Show the agency's registered key and the keys of the local key ring",
		Long: "Show the encryption key the directory has for this agency (and the keys it\n" +
			"had before), and the keys of the local key ring, each marked current or old\n" +
			"and whether it is the registered one. Never shows a private key.",
		Example: "  exchangectl keys show\n  exchangectl --json keys show",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runKeysShow(cmd.Context(), opts)
		},
	}
	opts.addKeyRingFlag(cmd.Flags())
	return cmd
}

// ringKeyView is one key of the local key ring, as `keys show` prints it.
type ringKeyView struct {
	Fingerprint string    `json:"fingerprint"`
	CreateTime  time.Time `json:"createTime"`
	Current     bool      `json:"current"`
	Registered  bool      `json:"registered"`
}

// runKeysShow prints the registered key and the local key ring.
func runKeysShow(ctx context.Context, o *keysShowOptions) error {
	agency, path, err := o.keyRingPath(o.app)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	a, err := c.Directory.GetAgency(ctx, client.AgencyName(agency))
	if err != nil {
		return err
	}
	registered := a.GetEncryptionKey().GetFingerprint()
	ring, err := openKeyRing(path)
	var missing exitError
	if errors.As(err, &missing) && missing.code == ExitNotFound {
		ring, err = nil, nil // shown as "none"
	}
	if err != nil {
		return err
	}
	var keys []ringKeyView
	if ring != nil {
		for i, k := range ring.Keys() {
			f := k.Recipient.Fingerprint().String()
			keys = append(keys, ringKeyView{Fingerprint: f, CreateTime: k.Created, Current: i == 0, Registered: f == registered})
		}
	}
	if o.app.global.JSON {
		return printKeysJSON(o.app, a, path, ring != nil, keys)
	}
	w := o.app.env.Stdout
	var previous []string
	for _, p := range a.GetPreviousEncryptionKeys() {
		previous = append(previous, fmt.Sprintf("%s (%s)", p.GetFingerprint(), formatTime(p.GetCreateTime())))
	}
	ringLine := path
	if ring == nil {
		ringLine += ": none (make one with `exchangectl keys create`)"
	}
	if err := printFields(w, []field{
		{"Agency", a.GetName()},
		{"Registered key", orNone(registered)},
		{"Registered", formatTime(a.GetEncryptionKey().GetCreateTime())},
		{"Previous keys", strings.Join(previous, ", ")},
		{"Key ring", ringLine},
	}); err != nil {
		return err
	}
	if ring == nil {
		return nil
	}
	fmt.Fprintln(w)
	var rows [][]string
	inRing := false
	for _, k := range keys {
		state := "old"
		if k.Current {
			state = "current"
		}
		if k.Registered {
			state += ", registered"
			inRing = true
		}
		rows = append(rows, []string{k.Fingerprint, formatTime(timestamppb.New(k.CreateTime)), state})
	}
	if err := printTable(w, []string{"FINGERPRINT", "CREATED", "STATE"}, rows); err != nil {
		return err
	}
	switch {
	case registered != "" && !inRing:
		fmt.Fprintf(w, "\nThe registered key is not in %s: referrals sealed to it cannot be opened with this key ring.\n", path)
	case !keys[0].Registered:
		fmt.Fprintln(w, "\nThe current key is not registered: run `exchangectl keys register`.")
	}
	return nil
}

// orNone is s, or "none" when s is empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// printKeysJSON prints `keys show` as one JSON object: the agency's name,
// its registered and previous keys in the API's JSON form, and the key
// ring (its path, whether it exists, its keys).
func printKeysJSON(a *app, agency *exchangev1.Agency, path string, exists bool, keys []ringKeyView) error {
	view := struct {
		Agency                 string            `json:"agency"`
		EncryptionKey          json.RawMessage   `json:"encryptionKey,omitempty"`
		PreviousEncryptionKeys []json.RawMessage `json:"previousEncryptionKeys"`
		KeyRing                struct {
			Path   string        `json:"path"`
			Exists bool          `json:"exists"`
			Keys   []ringKeyView `json:"keys"`
		} `json:"keyRing"`
	}{Agency: agency.GetName(), PreviousEncryptionKeys: []json.RawMessage{}}
	if k := agency.GetEncryptionKey(); k != nil {
		b, err := protojson.Marshal(k)
		if err != nil {
			return err
		}
		view.EncryptionKey = b
	}
	for _, p := range agency.GetPreviousEncryptionKeys() {
		b, err := protojson.Marshal(p)
		if err != nil {
			return err
		}
		view.PreviousEncryptionKeys = append(view.PreviousEncryptionKeys, b)
	}
	view.KeyRing.Path, view.KeyRing.Exists, view.KeyRing.Keys = path, exists, keys
	if view.KeyRing.Keys == nil {
		view.KeyRing.Keys = []ringKeyView{}
	}
	b, err := json.Marshal(view)
	if err != nil {
		return err
	}
	return writeIndented(a.env.Stdout, b)
}

// keysTrustOptions are the inputs of `keys trust`.
type keysTrustOptions struct {
	app *app
	keyFiles
	Agency      string
	Fingerprint seal.Fingerprint
}

// newKeysTrustCmd is `exchangectl keys trust`.
func newKeysTrustCmd(a *app, runF func(*keysTrustOptions) error) *cobra.Command {
	opts := &keysTrustOptions{app: a}
	cmd := &cobra.Command{
		Use:   "trust AGENCY FINGERPRINT [--pins FILE]",
		Short: "Pin a partner's key after confirming its fingerprint with the partner",
		Long: "Pin FINGERPRINT as AGENCY's encryption key, replacing the key pinned for it.\n" +
			"A pin file (seal.Pins) pins a partner's first key when the sender first sees\n" +
			"it and refuses any other key for that partner until it is trusted. Run this\n" +
			"when a partner has rotated its key, once the partner itself has told you the\n" +
			"new fingerprint by phone or in person: never take it from the exchange alone,\n" +
			"which could show a key of its own.",
		Example: "  exchangectl keys trust iom 9F2C-1B7E-0A44-D3C1-5E68-27B0-F19A-6C03",
		Args:    exactArgs("AGENCY", "FINGERPRINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := agencyID(args[0])
			if err != nil {
				return err
			}
			f, err := seal.ParseFingerprint(args[1])
			if err != nil {
				return usageErrorf("%s", strings.TrimPrefix(err.Error(), "seal: "))
			}
			opts.Agency, opts.Fingerprint = client.AgencyName(id), f
			if runF != nil {
				return runF(opts)
			}
			return runKeysTrust(opts)
		},
	}
	opts.addPinsFlag(cmd.Flags())
	return cmd
}

// runKeysTrust pins the fingerprint.
func runKeysTrust(o *keysTrustOptions) error {
	pins, path, err := openPinsFile(o.app, &o.keyFiles)
	if err != nil {
		return err
	}
	if err := pins.Trust(o.Agency, o.Fingerprint); err != nil {
		return err
	}
	list, err := pins.List()
	if err != nil {
		return err
	}
	for _, p := range list {
		if p.Agency != o.Agency {
			continue
		}
		if o.app.global.JSON {
			b, err := json.Marshal(newPinView(p))
			if err != nil {
				return err
			}
			return writeIndented(o.app.env.Stdout, b)
		}
		fmt.Fprintf(o.app.env.Stdout, "Pinned %s to key %s (in %s).\n", p.Agency, p.Fingerprint, path)
		return nil
	}
	return fmt.Errorf("the pin of %s is not in %s after trusting it", o.Agency, path)
}

// keysPinsOptions are the inputs of `keys pins`.
type keysPinsOptions struct {
	app *app
	keyFiles
}

// newKeysPinsCmd is `exchangectl keys pins`.
func newKeysPinsCmd(a *app, runF func(*keysPinsOptions) error) *cobra.Command {
	opts := &keysPinsOptions{app: a}
	cmd := &cobra.Command{
		Use:     "pins [--pins FILE]",
		Short:   "List the partners' keys pinned on this machine",
		Example: "  exchangectl keys pins",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runKeysPins(opts)
		},
	}
	opts.addPinsFlag(cmd.Flags())
	return cmd
}

// runKeysPins lists the pins.
func runKeysPins(o *keysPinsOptions) error {
	pins, path, err := openPinsFile(o.app, &o.keyFiles)
	if err != nil {
		return err
	}
	list, err := pins.List()
	if err != nil {
		return err
	}
	if o.app.global.JSON {
		out := make([]pinView, 0, len(list))
		for _, p := range list {
			out = append(out, newPinView(p))
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		return writeIndented(o.app.env.Stdout, b)
	}
	if len(list) == 0 {
		fmt.Fprintf(o.app.env.Stderr, "No keys pinned in %s.\n", path)
		return nil
	}
	var rows [][]string
	for _, p := range list {
		rows = append(rows, []string{p.Agency, p.Fingerprint.String(), formatTime(timestamppb.New(p.Since))})
	}
	return printTable(o.app.env.Stdout, []string{"AGENCY", "FINGERPRINT", "SINCE"}, rows)
}

// openPinsFile opens the pin file the flags name and returns its path.
func openPinsFile(a *app, k *keyFiles) (*seal.Pins, string, error) {
	path, err := k.pinsPath(a)
	if err != nil {
		return nil, "", err
	}
	pins, err := seal.OpenPins(path)
	if errors.Is(err, seal.ErrFileMode) {
		return nil, "", exitError{code: ExitInvalid, message: err.Error()}
	}
	return pins, path, err
}

// pinView is one pin in JSON.
type pinView struct {
	Agency      string    `json:"agency"`
	Fingerprint string    `json:"fingerprint"`
	Since       time.Time `json:"since"`
}

func newPinView(p seal.Pin) pinView {
	return pinView{Agency: p.Agency, Fingerprint: p.Fingerprint.String(), Since: p.Since.UTC()}
}

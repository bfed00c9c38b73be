package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/auditchain"
	"github.com/alltogether/exchange/store"
)

// backupVerifyOptions are the settings of `exchanged backup verify`.
type backupVerifyOptions struct {
	// file is the backup (or any database file exchanged is not serving).
	file string
	// head is a head recorded earlier, SEQUENCE:HEX-HASH, or empty.
	head string
}

// newBackupCommand is `exchanged backup`: offline work on backup files,
// which is exchanged's (the binary that owns the files) and not
// exchangectl's (a client of the wire API, which links no storage code).
func newBackupCommand(stdout io.Writer) *cobra.Command {
	backup := &cobra.Command{
		Use:   "backup",
		Short: "Offline work on backup files made with `exchangectl admin backup`",
	}
	o := &backupVerifyOptions{}
	verify := &cobra.Command{
		Use:   "verify FILE [--head SEQ:HASH]",
		Short: "Check a backup file: every page, the schema version and the audit chain",
		Long: `verify opens FILE read-only, checks every page of it and its schema
version, then every entry of the audit chain: each hash, each link and that
the chain reaches the head stored with it. --head compares with a head
recorded earlier (from ` + "`exchangectl audit head`" + `): the chain must still contain
it unchanged. FILE is not changed. To check the chain of the running
exchange, use ` + "`exchangectl audit verify`" + `.`,
		Example: "  exchanged backup verify exchange-2026-11-27.db --head 4211:9f2c…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			return verifyBackup(cmd.Context(), o, stdout)
		},
	}
	verify.Flags().StringVar(&o.head, "head", "", "a head recorded earlier, SEQUENCE:HEX-HASH, that the chain must still contain")
	backup.AddCommand(verify)
	return backup
}

// parseRecordedHead reads SEQUENCE:HEX-HASH as `exchangectl audit head`
// prints it.
func parseRecordedHead(head string) (uint64, []byte, error) {
	seqText, hashText, ok := strings.Cut(head, ":")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	hash, herr := hex.DecodeString(hashText)
	if !ok || err != nil || herr != nil || len(hash) != 32 || seq == 0 {
		return 0, nil, fmt.Errorf("--head %q: want SEQUENCE:HASH as printed by `exchangectl audit head`", head)
	}
	return seq, hash, nil
}

// verifyBackup checks o.file and says how much it checked.
func verifyBackup(ctx context.Context, o *backupVerifyOptions, stdout io.Writer) error {
	var seq uint64
	var hash []byte
	if o.head != "" {
		var err error
		if seq, hash, err = parseRecordedHead(o.head); err != nil {
			return err
		}
	}
	st, err := store.Open(o.file, store.Options{ReadOnly: true, CheckOnOpen: true})
	if err != nil {
		return fmt.Errorf("%s is not a usable backup: %w", o.file, err)
	}
	defer st.Close()
	n, err := st.VerifyAudit(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", o.file, err)
	}
	if seq > 0 {
		entries, err := st.AuditEntries(ctx, seq-1, 1)
		if err != nil {
			return fmt.Errorf("%s: %w", o.file, err)
		}
		if len(entries) == 0 || entries[0].GetSequence() != seq || !bytes.Equal(entries[0].GetHash(), hash) {
			return fmt.Errorf("%s: %w: the recorded head %d:%x is not in the chain any more (it was rewritten)", o.file, auditchain.ErrBroken, seq, hash)
		}
	}
	fmt.Fprintf(stdout, "audit chain in %s verified: %d entries, every hash and link intact", o.file, n)
	if seq > 0 {
		fmt.Fprintf(stdout, ", recorded head %d found unchanged", seq)
	}
	fmt.Fprintln(stdout)
	return nil
}

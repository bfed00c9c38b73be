package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/auditchain"
	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// newAuditCmd is `exchangectl audit`.
func newAuditCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("audit", "Read and verify the audit chain",
		"Every change, and every read of a referral's identifying details, is an audit\n"+
			"entry (who, which method, which resource, when; never personal data) whose hash\n"+
			"covers the entry before it. The secretariat sees the whole chain; an agency the\n"+
			"entries about its own resources.")
	cmd.AddCommand(newAuditVerifyCmd(a, nil), newAuditListCmd(a), newAuditHeadCmd(a), newAuditWatchCmd(a))
	return cmd
}

// auditVerifyOptions are the inputs of `audit verify`.
type auditVerifyOptions struct {
	app  *app
	Head string
	// Backup is the flag `audit verify` had before offline verification
	// moved to exchanged; it is hidden and only says where it went.
	Backup string
}

// newAuditVerifyCmd is `exchangectl audit verify`.
func newAuditVerifyCmd(a *app, runF func(*auditVerifyOptions) error) *cobra.Command {
	opts := &auditVerifyOptions{app: a}
	cmd := &cobra.Command{
		Use:   "verify [--head SEQ:HASH]",
		Short: "Verify the whole chain on the server",
		Long: "Reads every entry from the server (the secretariat) and checks each hash,\n" +
			"each link and that the chain reaches the head the server reports. --head\n" +
			"compares with a head recorded earlier (from `audit head`): the chain must\n" +
			"still contain it unchanged. To check a backup file, use\n" +
			"`exchanged backup verify FILE` where the file is: exchangectl is a client of\n" +
			"the exchange and opens no database file.",
		Example: "  exchangectl audit verify\n  exchangectl audit verify --head 4211:9f2c…",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Backup != "" {
				return usageErrorf("--backup: a backup file is verified by exchanged, which owns the files: run `exchanged backup verify %s` (with --head as here)", opts.Backup)
			}
			if _, _, err := opts.recordedHead(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runAuditVerify(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Head, "head", "", "a head recorded earlier, SEQUENCE:HEX-HASH, that the chain must still contain")
	cmd.Flags().StringVar(&opts.Backup, "backup", "", "moved: use `exchanged backup verify FILE`")
	cmd.Flags().MarkHidden("backup")
	return cmd
}

// recordedHead parses --head.
func (o *auditVerifyOptions) recordedHead() (uint64, []byte, error) {
	if o.Head == "" {
		return 0, nil, nil
	}
	seqText, hashText, ok := strings.Cut(o.Head, ":")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	hash, herr := hex.DecodeString(hashText)
	if !ok || err != nil || herr != nil || len(hash) != 32 || seq == 0 {
		return 0, nil, usageErrorf("--head %q: want SEQUENCE:HASH as printed by `exchangectl audit head`", o.Head)
	}
	return seq, hash, nil
}

// runAuditVerify verifies the chain on the server and says how much it
// checked.
func runAuditVerify(ctx context.Context, o *auditVerifyOptions) error {
	seq, hash, _ := o.recordedHead()
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	n, err := c.Audit.Verify(ctx)
	if err != nil {
		return err
	}
	if seq > 0 {
		var found *exchangev1.AuditEntry
		for e, err := range c.Audit.Entries(ctx) {
			if err != nil {
				return err
			}
			if e.GetSequence() == seq {
				found = e
				break
			}
		}
		if found == nil || !bytes.Equal(found.GetHash(), hash) {
			return fmt.Errorf("%w: the recorded head %d:%x is not in the chain any more (it was rewritten)", auditchain.ErrBroken, seq, hash)
		}
	}
	fmt.Fprintf(o.app.env.Stdout, "audit chain on the server verified: %d entries, every hash and link intact", n)
	if seq > 0 {
		fmt.Fprintf(o.app.env.Stdout, ", recorded head %d found unchanged", seq)
	}
	fmt.Fprintln(o.app.env.Stdout)
	return nil
}

// newAuditListCmd is `exchangectl audit list`.
func newAuditListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the audit entries you may see",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.connect(ctx)
			if err != nil {
				return err
			}
			entries, err := client.Collect(c.Audit.Entries(ctx))
			if err != nil {
				return err
			}
			return printList(a, entries, "audit entries", []string{"SEQ", "TIME", "ACTOR", "METHOD", "RESOURCE"},
				func(e *exchangev1.AuditEntry) []string {
					method := e.GetMethod()
					if i := strings.LastIndex(method, "/"); i >= 0 {
						method = method[i+1:]
					}
					return []string{strconv.FormatUint(e.GetSequence(), 10), formatTime(e.GetTime()), e.GetActor(), method, e.GetResourceName()}
				})
		},
	}
}

// newAuditHeadCmd is `exchangectl audit head`.
func newAuditHeadCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "head",
		Short: "Print the chain head (SEQUENCE:HASH), to record elsewhere",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			seq, hash, err := c.Audit.Head(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stdout, "%d:%x\n", seq, hash)
			return nil
		},
	}
}

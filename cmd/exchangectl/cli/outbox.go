package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/client/fieldfile"
)

const outboxLong = `Show and send the writes this machine made while the exchange could not be
reached. They are kept in the outbox of the field file (--field-file, or
EXCHANGE_FIELD_FILE), a file of this machine only.

With --field-file, every write of exchangectl that changes something at the
exchange (referrals push, acknowledge, accept, reject, start, complete, cancel
and revoke-consent; datasets push; plans apply) is first kept in the outbox,
then sent. A forward reads the referral first, so it needs the exchange. When the exchange cannot be reached, the write stays
there and the command says so:

  queued: the exchange cannot be reached; it will be sent by 'exchangectl outbox send' (outbox entry 7)

and exits 0. Do not make the write again: 'exchangectl outbox send' sends it,
in the order the writes were made, each referral's and dataset's writes one
after the other, and the exchange stores each once.

A write the exchange refuses when 'outbox send' sends it (consent no longer
valid, someone changed the referral since it was read, a row it rejects) is
never dropped: it stays in the outbox, "rejected", with the exchange's reason,
and holds back the later writes to the same referral, dataset or plans. Read
the reason ('exchangectl outbox list'), resolve it (for example read the
referral again and make the change anew), then drop the entry with
'exchangectl outbox drop ID --yes'.

This is not 'exchangectl referrals outbox', which lists the referrals your
agency sent and the exchange has.`

// newOutboxCmd is `exchangectl outbox`.
func newOutboxCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("outbox", "Show and send the writes kept while the exchange could not be reached", outboxLong)
	cmd.AddCommand(newOutboxListCmd(a), newOutboxSendCmd(a), newOutboxDropCmd(a), newOutboxFetchKeysCmd(a))
	return cmd
}

// openFieldFile returns the field file for the outbox commands that need
// no connection; the run closes it.
func (a *app) openFieldFile() (*fieldfile.File, error) {
	f, err := a.fieldFile()
	if err == nil && f == nil {
		err = usageErrorf("no field file: pass --field-file PATH (or set %s)", EnvFieldFile)
	}
	return f, err
}

// connectOutbox connects with the field file, sealing as referrals do.
func (a *app) connectOutbox(ctx context.Context) (*client.Client, error) {
	if _, err := a.openFieldFile(); err != nil {
		return nil, err
	}
	return a.connectSealing(ctx)
}

// printQueued tells that a write was kept in the outbox.
func printQueued(w io.Writer, err error) {
	id, _ := client.QueuedEntry(err)
	fmt.Fprintf(w, "queued: the exchange cannot be reached; it will be sent by 'exchangectl outbox send' (outbox entry %d)\n", id)
}

// outboxEntryJSON is an entry as `outbox list --json` prints it.
type outboxEntryJSON struct {
	ID          uint64    `json:"id"`
	Resource    string    `json:"resource"`
	Kind        string    `json:"kind"`
	Method      string    `json:"method"`
	State       string    `json:"state"`
	Attempts    int       `json:"attempts"`
	Queued      time.Time `json:"queued"`
	LastAttempt time.Time `json:"lastAttempt,omitzero"`
	Code        string    `json:"code,omitempty"`
	LastError   string    `json:"lastError,omitempty"`
}

func entryJSON(e fieldfile.Entry) outboxEntryJSON {
	return outboxEntryJSON{ID: e.ID, Resource: e.Resource, Kind: e.Kind, Method: e.Method, State: string(e.State),
		Attempts: e.Attempts, Queued: e.Queued, LastAttempt: e.LastAttempt, Code: e.Code, LastError: e.LastError}
}

// printEntries prints entries as a table or, with --json, an array.
func (a *app) printEntries(entries []fieldfile.Entry) error {
	if a.global.JSON {
		list := make([]outboxEntryJSON, 0, len(entries))
		for _, e := range entries {
			list = append(list, entryJSON(e))
		}
		b, err := json.Marshal(list)
		if err != nil {
			return err
		}
		return writeIndented(a.env.Stdout, b)
	}
	rows := make([][]string, 0, len(entries))
	for _, e := range entries {
		lastError := e.LastError
		if e.Code != "" {
			lastError = e.Code + ": " + lastError
		}
		rows = append(rows, []string{strconv.FormatUint(e.ID, 10), e.Resource, e.Kind, string(e.State),
			strconv.Itoa(e.Attempts), e.Queued.Local().Format(time.DateTime), orDash(oneLine(lastError))})
	}
	return printTable(a.env.Stdout, []string{"ID", "RESOURCE", "KIND", "STATE", "ATTEMPTS", "FIRST QUEUED", "LAST ERROR"}, rows)
}

// newOutboxListCmd is `exchangectl outbox list`.
func newOutboxListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the writes waiting in the outbox, oldest first",
		Long: `List the writes waiting in the outbox, oldest first: id, the referral,
dataset or plans written to, what the write does, its state (pending: not
yet sent or not answered; rejected: refused by the exchange, see the last
error), how often it was sent, when it was first queued, and the last error.
Needs no connection. Not 'exchangectl referrals outbox' (referrals sent).`,
		Example: "  exchangectl --field-file field.db outbox list",
		Args:    exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			f, err := a.openFieldFile()
			if err != nil {
				return err
			}
			entries, err := f.Entries()
			if err != nil {
				return err
			}
			if len(entries) == 0 && !a.global.JSON {
				fmt.Fprintln(a.env.Stderr, "The outbox is empty.")
				return nil
			}
			return a.printEntries(entries)
		},
	}
}

// newOutboxSendCmd is `exchangectl outbox send`.
func newOutboxSendCmd(a *app) *cobra.Command {
	var attemptTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "send",
		Short: "Send the writes waiting in the outbox, in order",
		Long: `Send the writes waiting in the outbox, oldest first, each referral's, dataset's
and plans' writes in the order they were made. It prints one line per write
sent or rejected, then what is left.

Exit codes: 0 when the outbox is empty afterwards; 7 when the exchange could
not be reached (run it again later: nothing is sent twice); 6 when writes were
rejected, now or before, and wait for you (see 'exchangectl outbox list', then
'exchangectl outbox drop'). It may be killed at any moment: run it again.`,
		Example:     "  exchangectl --field-file field.db outbox send",
		Args:        exactArgs(),
		Annotations: longRunning,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.connectOutbox(cmd.Context())
			if err != nil {
				return err
			}
			c.Outbox.AttemptTimeout = attemptTimeout
			rep, err := c.Outbox.Send(cmd.Context())
			if err != nil {
				return err
			}
			for _, e := range rep.Sent {
				fmt.Fprintf(a.env.Stdout, "sent      %d  %s  %s\n", e.ID, e.Kind, e.Resource)
			}
			for _, e := range rep.Rejected {
				fmt.Fprintf(a.env.Stdout, "rejected  %d  %s  %s  %s: %s\n", e.ID, e.Kind, e.Resource, e.Code, oneLine(e.LastError))
			}
			rejected, pending := 0, 0
			for _, e := range rep.Left {
				if e.State == fieldfile.Rejected {
					rejected++
				} else {
					pending++
				}
			}
			fmt.Fprintf(a.env.Stderr, "%d sent, %d rejected now; left in the outbox: %d rejected, %d pending.\n",
				len(rep.Sent), len(rep.Rejected), rejected, pending)
			switch {
			case rep.Unreachable != nil:
				return exitError{code: ExitUnavailable, message: "the exchange cannot be reached (" + oneLine(rep.Unreachable.Error()) + "); run 'exchangectl outbox send' again later"}
			case rejected > 0:
				return exitError{code: ExitInvalid, message: fmt.Sprintf("%d %s rejected and wait for you: see 'exchangectl outbox list'", rejected, plural(rejected, "write was", "writes were"))}
			case pending > 0:
				return exitError{code: ExitInvalid, message: fmt.Sprintf("%d %s still pending", pending, plural(pending, "write is", "writes are"))}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&attemptTimeout, "attempt-timeout", client.DefaultAttemptTimeout, "time to wait for the exchange's answer to each write")
	return cmd
}

// newOutboxDropCmd is `exchangectl outbox drop`.
func newOutboxDropCmd(a *app) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "drop ID --yes",
		Short: "Remove a write from the outbox without sending it",
		Long: `Remove the write with the given id (see 'exchangectl outbox list') from the
outbox for good, without sending it: once you have resolved a rejected write
another way, or decided a pending one must not be sent. The drop is recorded
in the field file and printed. Later writes to the same referral, dataset or
plans are then sent by the next 'exchangectl outbox send'. Needs --yes.`,
		Example: "  exchangectl --field-file field.db outbox drop 7 --yes",
		Args:    exactArgs("ID"),
		RunE: func(_ *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return usageErrorf("ID %q: want an entry id from 'exchangectl outbox list'", args[0])
			}
			if !yes {
				return usageErrorf("dropping entry %d removes the write for good; add --yes to confirm", id)
			}
			f, err := a.openFieldFile()
			if err != nil {
				return err
			}
			e, err := f.Drop(id)
			if errors.Is(err, fieldfile.ErrNoEntry) {
				return exitError{code: ExitNotFound, message: fmt.Sprintf("exchangectl: no entry %d in the outbox", id)}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stderr, "dropped outbox entry %d (%s, %s of %s, queued %s), never sent by this outbox again\n",
				e.ID, e.State, e.Kind, e.Resource, e.Queued.Local().Format(time.DateTime))
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the drop")
	return cmd
}

// newOutboxFetchKeysCmd is `exchangectl outbox fetch-keys`.
func newOutboxFetchKeysCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "fetch-keys AGENCY...",
		Short: "Keep agencies' encryption keys, to seal referrals to them offline",
		Long: `Fetch the encryption key of each agency named ("agencies/iom" or "iom"),
check it against its pin, and keep it in the field file, so that referrals
to these agencies can be sealed and queued while the exchange cannot be
reached. A referral sent while the exchange can be reached keeps its
receiver's key too.`,
		Example: "  exchangectl --field-file field.db outbox fetch-keys iom unicef",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := agencyNames(args)
			if err != nil {
				return err
			}
			c, err := a.connectOutbox(cmd.Context())
			if err != nil {
				return err
			}
			if err := c.Outbox.FetchKeys(cmd.Context(), names...); err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stderr, "kept the keys of %d %s\n", len(names), plural(len(names), "agency", "agencies"))
			return nil
		},
	}
}

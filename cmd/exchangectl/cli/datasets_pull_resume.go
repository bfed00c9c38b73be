package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/client/fieldfile"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// A pull into a file with a field file is resumable: the rows go to a
// partial file beside FILE, and after each message the partial file is
// flushed and synced to disk, then its length saved in the field file
// with the pull's position. A later run of the same command truncates
// the partial file to the saved length (dropping rows written after the
// last save, which the exchange sends again) and appends from the saved
// position, so that each row is in the file once however the earlier
// run ended: Ctrl-C, a broken link, a crash or kill -9. Only a complete
// pull replaces FILE.

// savedPull is what exchangectl keeps in the field file for a resumable
// pull: the client's position and the state of the partial file that
// goes with it.
type savedPull struct {
	// Client is the position client.ResumeFrom saved.
	Client string `json:"client"`
	// Partial is the partial file, and Size its length when Client was
	// saved.
	Partial string `json:"partial"`
	Size    int64  `json:"size"`
	// Rows and Skipped count the rows written and the deleted rows left
	// out so far; Revision is the pull's revision.
	Rows     int   `json:"rows"`
	Skipped  int   `json:"skipped"`
	Revision int64 `json:"revision"`
	// The output options, which must not change on the way.
	Format     string `json:"format"`
	Tombstones bool   `json:"tombstones,omitempty"`
	RawText    bool   `json:"raw_text,omitempty"`
}

// resumeTarget returns the regular file that a pull into path replaces
// (path itself, or the regular file a symbolic link at path leads to),
// or "" when path is not, or does not lead to, a regular file or nothing
// (a device, a pipe, a dangling link): such an output is written as the
// rows come and cannot be resumed.
func resumeTarget(path string) (string, error) {
	info, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return path, nil
	case err != nil:
		return "", err
	case info.Mode().IsRegular():
		return path, nil
	case info.Mode()&fs.ModeSymlink != 0:
		if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
			return filepath.EvalSymlinks(path)
		}
	}
	return "", nil
}

// pullCursorPrefix is the name under which a pull of dataset into the
// regular file target keeps its position (the client adds a digest of
// the request's filters).
func pullCursorPrefix(dataset, target string) string {
	return "pull:" + dataset + ">" + target
}

// partialPath is the partial file of the pull whose cursor is key: a
// hidden file beside target, named after the request's digest.
func partialPath(target, key string) string {
	digest := key[strings.LastIndex(key, "?")+1:]
	return filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+"."+digest+".partial")
}

// gateWriter writes to w, which may be switched between writes.
type gateWriter struct{ w io.Writer }

func (g *gateWriter) Write(p []byte) (int, error) { return g.w.Write(p) }

// outputCursors is the field file's cursors as a client.CursorStore for
// a resumable pull: Save first makes the partial file durable (record
// flushes and syncs it) and keeps its state with the client's position;
// Load gives the client its position back.
type outputCursors struct {
	cursors *fieldfile.PathCursors
	record  func(clientValue string) (savedPull, error)
}

func (o outputCursors) Load(name string) (string, error) {
	v, err := o.cursors.Load(name)
	if err != nil || v == "" {
		return "", err
	}
	var s savedPull
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return "", err
	}
	return s.Client, nil
}

func (o outputCursors) Save(name, value string) error {
	s, err := o.record(value)
	if err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return o.cursors.Save(name, string(b))
}

func (o outputCursors) Delete(name string) error { return o.cursors.Delete(name) }

// openPartial opens the partial file at path: a new empty one, or, when
// resuming, the existing one cut back to size. It refuses anything but a
// regular file there.
func openPartial(path string, resuming bool, size int64) (*os.File, error) {
	info, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && resuming:
		return nil, fmt.Errorf("the rows of the interrupted pull (%s) are gone; run again with --start-over to pull from the start", path)
	case err == nil && !info.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file; remove it, or pull into another file", path)
	case err == nil && resuming && info.Size() < size:
		return nil, fmt.Errorf("%s holds %d bytes, fewer than the %d saved; run again with --start-over to pull from the start", path, info.Size(), size)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	flags := os.O_RDWR | os.O_CREATE | os.O_TRUNC
	if resuming {
		flags = os.O_RDWR
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	if resuming {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, err
		}
		if _, err := f.Seek(size, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// runResumablePull pulls req into the regular file target (o.Out as the
// user wrote it), keeping the pull's position in the field file through
// cursors, which hold the file only while they load or save.
func runResumablePull(ctx context.Context, o *datasetsPullOptions, c *client.Client, d *exchangev1.Dataset, req *exchangev1.PullDatasetRowsRequest, cursors *fieldfile.PathCursors, target string) error {
	stderr := o.app.env.Stderr
	prefix := pullCursorPrefix(req.GetDataset(), target)
	key := client.PullCursorName(prefix, req)
	partial := partialPath(target, key)
	if o.StartOver {
		if err := cursors.Delete(key); err != nil {
			return fmt.Errorf("--field-file: %w", err)
		}
	}
	var saved savedPull
	raw, err := cursors.Load(key)
	if err != nil {
		return fmt.Errorf("--field-file: %w", err)
	}
	resuming := raw != ""
	if resuming {
		if err := json.Unmarshal([]byte(raw), &saved); err != nil || saved.Partial != partial {
			return fmt.Errorf("the field file's record of this pull (%s) is not one this exchangectl wrote; run again with --start-over", key)
		}
		if saved.Format != o.Format || saved.Tombstones != o.Tombstones || saved.RawText != o.RawText {
			return usageErrorf("this pull into %s began with --format %s%s%s; run it again with the same flags to resume it, or with --start-over to begin again",
				o.Out, saved.Format, flagIf(saved.Tombstones, " --tombstones"), flagIf(saved.RawText, " --raw-text"))
		}
	}
	f, err := openPartial(partial, resuming, saved.Size)
	if err != nil {
		return err
	}
	out := &outputFile{File: f, replace: target}
	committed := false
	defer func() {
		if !committed {
			f.Close()
		}
	}()

	// A resumed CSV file has its header already: the new writer's goes
	// to a buffer, to check that the dataset's columns are still those
	// of the file.
	gate := &gateWriter{w: f}
	var header bytes.Buffer
	if resuming {
		gate.w = &header
	}
	sink, err := o.newSink(gate, d)
	if err != nil {
		return err
	}
	if resuming {
		if err := sink.Flush(); err != nil {
			return err
		}
		had := make([]byte, header.Len())
		if _, err := f.ReadAt(had, 0); err != nil || !bytes.Equal(had, header.Bytes()) {
			return fmt.Errorf("the columns of %s changed since this pull into %s began; run again with --start-over", req.GetDataset(), o.Out)
		}
		gate.w = f
		fmt.Fprintf(stderr, "Resuming the pull into %s after row %d (the rows so far are in %s); --start-over begins again.\n", o.Out, saved.Rows, partial)
	}

	t := pullTally{rows: saved.Rows, skipped: saved.Skipped, revision: saved.Revision, started: resuming}
	store := outputCursors{cursors: cursors, record: func(clientValue string) (savedPull, error) {
		if err := sink.Flush(); err != nil {
			return savedPull{}, err
		}
		if err := f.Sync(); err != nil {
			return savedPull{}, err
		}
		size, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return savedPull{}, err
		}
		return savedPull{Client: clientValue, Partial: partial, Size: size, Rows: t.rows, Skipped: t.skipped, Revision: t.revision,
			Format: o.Format, Tombstones: o.Tombstones, RawText: o.RawText}, nil
	}}

	prog := o.app.newProgress()
	err = o.pullRows(ctx, c, req, sink, prog, stderr, &t, client.ResumeFrom(store, prefix))
	rows, skipped, revision, started := t.rows, t.skipped, t.revision, t.started
	if err == nil {
		err = sink.Flush()
	}
	if err == nil {
		committed = true
		err = out.Commit()
	}
	if err != nil {
		if !committed {
			if kept, lerr := cursors.Load(key); lerr == nil && kept == "" {
				// No position was saved: nothing to resume from.
				f.Close()
				os.Remove(partial)
				fmt.Fprintf(stderr, "Nothing was written to %s.\n", o.Out)
				return err
			}
			fmt.Fprintf(stderr, "The pull stopped after %d rows, kept in %s; run the same command again to resume it. %s is replaced only once the pull is complete.\n", rows, partial, o.Out)
		}
		return err
	}
	note := ""
	if skipped > 0 {
		note = fmt.Sprintf(" %d deleted %s left out (--tombstones includes them).", skipped, plural(skipped, "row", "rows"))
	}
	if started {
		fmt.Fprintf(stderr, "Pulled %d %s into %s at revision %d.%s Next time: --since %d\n", rows, plural(rows, "row", "rows"), o.Out, revision, note, revision)
	}
	return nil
}

// flagIf returns flag when set, "" otherwise.
func flagIf(set bool, flag string) string {
	if set {
		return flag
	}
	return ""
}

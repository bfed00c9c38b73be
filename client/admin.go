package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// AdminClient takes backups and reads the store's state. Secretariat only.
type AdminClient struct {
	rpc exchangev1.AdminServiceClient
}

// Backup streams a consistent snapshot of the database into w and returns
// its revision and size. It fails if fewer bytes arrive than announced.
func (c *AdminClient) Backup(ctx context.Context, w io.Writer) (revision, size int64, err error) {
	stream, err := c.rpc.Backup(ctx, &exchangev1.BackupRequest{})
	if err != nil {
		return 0, 0, err
	}
	var written int64
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		if revision == 0 {
			revision, size = msg.GetRevision(), msg.GetSize()
		}
		n, err := w.Write(msg.GetData())
		written += int64(n)
		if err != nil {
			return 0, 0, err
		}
	}
	if written != size {
		return 0, 0, fmt.Errorf("client: backup ended after %d of %d bytes", written, size)
	}
	return revision, size, nil
}

// Status reads the store's size, quota, revisions and audit head.
func (c *AdminClient) Status(ctx context.Context) (*exchangev1.GetStorageStatusResponse, error) {
	return c.rpc.GetStorageStatus(ctx, &exchangev1.GetStorageStatusRequest{})
}

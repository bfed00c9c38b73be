//go:build unix

package cli

import "syscall"

// openNoCTTY keeps a terminal device opened for output from becoming the
// process's controlling terminal.
const openNoCTTY = syscall.O_NOCTTY

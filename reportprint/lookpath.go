package reportprint

import "os/exec"

// lookPath finds a program on PATH.
func lookPath(name string) (string, error) { return exec.LookPath(name) }

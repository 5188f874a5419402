// Package etc holds the files scanwarden ships for /etc and systemd: the
// config (scanwarden.conf), the ignore file (scanwarden.ignore) and the
// unit (scanwarden.service). It has no code; its tests check that the
// shipped files parse (the config documents every BLOCK_BACKEND) and that
// the unit grants only what the daemon needs.
package etc

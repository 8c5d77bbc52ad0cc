untrusted comment: verify with ../test-keys/test.pub
RWRNYbA+TpAQTeEaVHojUaXtfvTAJvXNhCk1lVU1TZmTx0eS2kaNQ+Q6CrM/cONkbnB24eD6t4vBjjD6VscO+bPdm7rjTX+/aw8=

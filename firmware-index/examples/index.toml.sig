untrusted comment: verify with ../test-keys/test.pub
RWRNYbA+TpAQTaZ292jLLBwh1WlxfAOD7Gx19clyhTZ/8Qr/Wwh4sexwSDRemmiTJCapB43z15jn/MKSguNPCfn4SUMyjjQFyQg=

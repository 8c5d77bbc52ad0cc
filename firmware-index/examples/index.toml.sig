untrusted comment: verify with ../test-keys/test.pub
RWRNYbA+TpAQTUUnpV13bgKZsS+ZmACkRWpi/x3cHEdr5A1WMdkJyZJgC4WB6FebybsFJxlEVcZVJW1A+3iTXMoC+/X2cg/OkA4=

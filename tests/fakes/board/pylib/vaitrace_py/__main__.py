import sys

from ofa_fake_vaitrace import vaitrace_py_main

sys.exit(vaitrace_py_main(sys.argv[1:]))

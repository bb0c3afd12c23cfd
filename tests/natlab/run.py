#!/usr/bin/python3
"""Run NAT-lab tests with an exit status ctest understands.

    /usr/bin/python3 run.py [TEST_NAME ...]     (default: test_lab_selfcheck)

TEST_NAME is anything ``unittest`` accepts: ``test_netcheck``,
``test_netcheck.NetcheckTest.test_symmetric``, ...  Exit status: 0 all passed, 1 something
failed, 77 everything was skipped (no root, no nft, binaries not configured) -- pair it with
``SKIP_RETURN_CODE 77`` so ctest reports "Skipped" instead of a silent pass.
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    sys.path.insert(0, HERE)
    names = argv or ["test_lab_selfcheck"]
    suite = unittest.defaultTestLoader.loadTestsFromNames(names)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if not result.wasSuccessful():
        return 1
    if result.testsRun and len(result.skipped) == result.testsRun:
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

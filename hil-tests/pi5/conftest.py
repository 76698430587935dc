"""pytest options and the board fixture for the dashcam cases.

    pytest hil-tests/pi5 --lg-env hil-tests/pi5/env.yaml --image IMG --bundle B --key K
    pytest hil-tests/pi5 --board qemu --image IMG --bundle B --key K
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "ota"))


def pytest_addoption(parser):
    g = parser.getgroup("blackbox")
    g.addoption("--board", choices=["pi5", "qemu"], default="pi5",
                help="the Pi 5 in the rig (labgrid, --lg-env) or the qemu image")
    g.addoption("--image", required=True, help="the SD-card image to flash")
    g.addoption("--bundle", help="an update bundle newer than the image (the update case)")
    g.addoption("--key", required=True, help="the rig's SSH private key (KEY.pub beside it)")
    g.addoption("--workdir", default=os.path.join(HERE, "out"),
                help="consoles and the qemu board's card")


@pytest.fixture(scope="session")
def board(request):
    from boards import Pi5Board, QemuBoard
    opt = request.config.getoption
    if opt("--board") == "qemu":
        b = QemuBoard(opt("--key"), opt("--workdir"))
    else:
        target = request.getfixturevalue("target")  # labgrid's, from --lg-env
        b = Pi5Board(opt("--key"), target)
    b.flash(opt("--image"))
    yield b
    b.power_cut()


@pytest.fixture(scope="session")
def bundle(request):
    return request.config.getoption("--bundle")

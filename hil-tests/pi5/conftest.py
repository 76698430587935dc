"""pytest options and the board fixture for the dashcam cases.

    pytest hil-tests/pi5 --lg-env hil-tests/pi5/env.yaml --image IMG --bundle B --broken-bundle X --key K
    pytest hil-tests/pi5 --board qemu --image IMG --bundle B --broken-bundle X --key K
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
    g.addoption("--broken-bundle",
                help="a newer bundle whose blackbox never becomes healthy (the rollback case)")
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
    # The bundles go onto the card with the image, as an owner would copy
    # an update there (through SSH it is a minute of CPU under emulation).
    b.flash(opt("--image"), carry=[f for f in (opt("--bundle"), opt("--broken-bundle")) if f])
    yield b
    b.power_cut()


@pytest.fixture(scope="session")
def bundle(request):
    """The name of the newer bundle on /data, or None."""
    f = request.config.getoption("--bundle")
    return os.path.basename(f) if f else None


@pytest.fixture(scope="session")
def broken_bundle(request):
    """The name of the broken newer bundle on /data, or None."""
    f = request.config.getoption("--broken-bundle")
    return os.path.basename(f) if f else None

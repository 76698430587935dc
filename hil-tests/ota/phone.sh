#!/bin/bash
# Run inside the emulated dashcam (scenarios.py carries it to /data/phone
# with wifi_phone, examples/wifi_phone.rs, and busybox for its DHCP
# client): a phone on the second simulated radio (mac80211_hwsim), in a
# network namespace of its own, so that its traffic crosses the simulated
# air to the dashcam's access point like a real phone's.
#   phone.sh up                        the namespace, the radio moved into it
#   phone.sh join SSID PASS KEY_MGMT   0 once joined; 1 when refused (a wrong
#                                      key: wpa_supplicant gives up on it)
#   phone.sh dhcp                      an address from the dashcam; prints it
#                                      (udhcpc calls back: bound, renew...)
#   phone.sh run CMD...                CMD inside the phone's namespace
#   phone.sh in NS CMD...              CMD inside namespace NS
#   phone.sh home SSID PASS            the owner's home network: hostapd on the
#                                      third radio in namespace "home"
#                                      (192.168.50.1, busybox udhcpd)
#   phone.sh home-stop                 the home network goes away
#   phone.sh beyond                    a host past the dashcam (a namespace on
#                                      a veth, 10.73.0.2, listening on 7000)
set -euo pipefail
here=/data/phone
ns=phone
wpa=/run/phone-wpa
in_ns() { ip netns exec "$ns" "$@"; }

case ${1:-} in
up)
  ip netns add "$ns"
  phy=$(cat /sys/class/net/wlan1/phy80211/name)
  iw phy "$phy" set netns name "$ns"
  in_ns ip link set lo up
  in_ns ip link set wlan1 up
  ;;
join)
  ssid=$2 pass=$3 mgmt=$4
  if [ -f "$wpa.pid" ]; then
    kill "$(cat "$wpa.pid")" 2>/dev/null || true
    while [ -f "$wpa.pid" ] && kill -0 "$(cat "$wpa.pid")" 2>/dev/null; do sleep 0.2; done
    rm -f "$wpa.pid"
  fi
  rm -rf "$wpa.ctl" "$wpa.log"
  printf 'ctrl_interface=%s\nnetwork={\n ssid="%s"\n psk="%s"\n key_mgmt=%s\n ieee80211w=%s\n}\n' \
    "$wpa.ctl" "$ssid" "$pass" "$mgmt" "$([ "$mgmt" = SAE ] && echo 2 || echo 1)" > "$wpa.conf"
  in_ns wpa_supplicant -B -i wlan1 -c "$wpa.conf" -P "$wpa.pid" -f "$wpa.log"
  # No clock decides: joined (connected, keys negotiated) or refused (the
  # network disabled after a failed handshake); a hang is the harness's
  # timeout. (wpa_supplicant's own log: wpa_cli needs a writable /tmp,
  # which the read-only system has not.)
  while :; do
    if grep -q "CTRL-EVENT-CONNECTED" "$wpa.log" 2>/dev/null; then echo "joined ($mgmt)"; exit 0; fi
    if grep -q "CTRL-EVENT-SSID-TEMP-DISABLED" "$wpa.log" 2>/dev/null; then
      echo "refused ($mgmt): $(grep -m1 -o 'TEMP-DISABLED.*reason=[A-Z_]*' "$wpa.log" | grep -o 'reason=.*')"
      exit 1
    fi
    sleep 0.5
  done
  ;;
dhcp)
  # busybox's udhcpc calls this script back with the lease (bound, renew).
  rm -f /run/phone-ip
  in_ns "$here/busybox" udhcpc -i wlan1 -n -q -t 30 -T 3 -s "$here/phone.sh" >/dev/null 2>&1
  cat /run/phone-ip
  ;;
bound|renew)
  # udhcpc's environment: interface, ip, mask.
  interface=${interface:?} ip=${ip:?} mask=${mask:?}
  ip addr flush dev "$interface"
  ip addr add "$ip/$mask" dev "$interface"
  # Multicast out of this interface, as a phone's stack has it (mDNS).
  ip route replace 224.0.0.0/4 dev "$interface"
  echo "$ip" > /run/phone-ip
  ;;
deconfig|leasefail|nak)
  ;;
run)
  shift
  in_ns "$@"
  ;;
in)
  shift
  ip netns exec "$@"
  ;;
home)
  ssid=$2 pass=$3
  ip netns add home
  phy=$(cat /sys/class/net/wlan2/phy80211/name)
  iw phy "$phy" set netns name home
  ip netns exec home ip link set lo up
  ip netns exec home ip addr add 192.168.50.1/24 dev wlan2
  ip netns exec home ip link set wlan2 up
  ip netns exec home ip route add 224.0.0.0/4 dev wlan2
  printf 'interface=wlan2\ndriver=nl80211\nssid=%s\nhw_mode=g\nchannel=1\nwpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase=%s\n' \
    "$ssid" "$pass" > /run/home-hostapd.conf
  ip netns exec home hostapd -B -P /run/home-hostapd.pid /run/home-hostapd.conf >/dev/null
  printf 'start 192.168.50.100\nend 192.168.50.150\ninterface wlan2\nlease_file /run/home-udhcpd.leases\npidfile /run/home-udhcpd.pid\noption subnet 255.255.255.0\n' \
    > /run/home-udhcpd.conf
  touch /run/home-udhcpd.leases
  setsid -f ip netns exec home "$here/busybox" udhcpd -f /run/home-udhcpd.conf </dev/null >/dev/null 2>&1
  ;;
home-stop)
  kill "$(cat /run/home-hostapd.pid)"
  ;;
beyond)
  ip netns add beyond
  ip link add vb0 type veth peer name vb1
  ip link set vb1 netns beyond
  ip addr add 10.73.0.1/24 dev vb0
  ip link set vb0 up
  ip netns exec beyond ip addr add 10.73.0.2/24 dev vb1
  ip netns exec beyond ip link set vb1 up
  ip netns exec beyond ip link set lo up
  ip netns exec beyond ip route add default via 10.73.0.1
  setsid -f ip netns exec beyond "$here/wifi_phone" listen 7000 </dev/null >/dev/null 2>&1
  ;;
*)
  echo "usage: phone.sh up | join SSID PASS KEY_MGMT | dhcp | run CMD... | in NS CMD... | home SSID PASS | home-stop | beyond" >&2
  exit 2
  ;;
esac

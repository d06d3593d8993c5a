#!/bin/sh
# Runs inside the image being built (Dockerfile RUN or chroot after debootstrap) so both
# builders produce the same image.
set -eu
# An extra CA (corporate TLS-intercepting proxy, or this machine's bundle) is trusted in
# addition to Debian's own, never instead of it.
if [ -s /tmp/extra-ca.crt ]; then
  install -m 0644 /tmp/extra-ca.crt /usr/local/share/ca-certificates/lab-extra-ca.crt
  update-ca-certificates >/dev/null
fi
rm -f /tmp/extra-ca.crt
# Units that make no sense in a container and slow down or break boot.
for unit in getty.target console-getty.service systemd-firstboot.service \
  systemd-udevd.service systemd-udev-trigger.service systemd-remount-fs.service \
  sys-kernel-debug.mount sys-kernel-tracing.mount apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer fstrim.timer; do
  ln -sf /dev/null "/etc/systemd/system/$unit"
done
# systemd generates a machine-id on first boot of each container.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# Mark the (now empty) package lists as old, so the first `apt update_cache` with
# cache_valid_time refreshes them instead of trusting an empty cache.
mkdir -p /var/lib/apt/lists/partial
touch -d @0 /var/lib/apt/lists

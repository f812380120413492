"""Cinder volume driver for the Magnetar OpenStack all-in-one (a test cloud, not a production driver).

cinder.tests.fake_driver.FakeLoggingVolumeDriver (shipped in python3-cinder) takes volumes to "available" without any
storage, but it inherits the LVM driver's image copy, which downloads the image and writes it with qemu-img to a block
device that does not exist: a volume created from an image (what "server create --boot-from-volume" asks for) would go
to "error". Here the image copy is a no-op too, like every other data operation of the fake driver.
"""
from cinder.tests import fake_driver


class AllInOneVolumeDriver(fake_driver.FakeLoggingVolumeDriver):
    def copy_image_to_volume(self, context, volume, image_service, image_id, **kwargs):
        pass

"""The level at which a background-subtracted PANOPTES pixel is saturated, in one place.

Frame quality, the stamp cube and the photometry flag saturation against it; the lightcurves
service imports it without the source detection that frame quality needs.
"""

# A background-subtracted pixel at or above this is taken as saturated: PANOPTES Canon sensors
# clip at 11,535 ADU above black, less a night sky of a few hundred ADU.
SATURATION_ABOVE_SKY = 11_000.0

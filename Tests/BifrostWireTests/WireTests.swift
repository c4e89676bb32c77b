import BifrostWire
import PropertyBased
import Testing

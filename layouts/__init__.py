"""Where things are: the directory layouts that components/, models/ and the
runners share. A neutral package: it imports none of them, so everything may
import it."""

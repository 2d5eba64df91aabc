"""Components shared by the Relais stacks: provider-neutral ``Args`` dataclasses
(:mod:`.args`) and one ``ComponentResource`` per concept and provider."""
